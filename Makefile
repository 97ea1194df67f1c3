# berth: binaries, images and the local two-host cluster. The recipes only call
# go, docker and scripts/; the logic lives in the scripts.
#   make run        build everything and start the cluster (2 DinD hosts + scheduler)
#   make test       vet, lint, unit + integration tests, then e2e/browser/fault suites on the cluster
#   make test-unit  vet and the unit tests only: no images, no cluster, no root
#   make fuzz       every Go fuzz target for BERTH_FUZZTIME (default 5s) each
#   make lint       golangci-lint (.golangci.yml), fetched through the Go module proxy
#   make down       stop the cluster, keeping its volumes;  make clean  remove everything
# BERTH_DIND=privileged uses privileged DinD hosts where the engine allows it.

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X berth/shared/version.Version=$(VERSION)
COMPOSE := scripts/compose.sh
# Pinned; `go run pkg@version` builds it once into the Go build cache and
# leaves go.mod alone (as a go.mod tool it would add ~200 indirect lines).
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := go run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# Go lives in /usr/local/go on the project's machines, not always on PATH.
ifeq ($(shell command -v go 2>/dev/null),)
export PATH := $(PATH):/usr/local/go/bin
endif

.PHONY: deps build certs images run run-ha load-workspace-images-dind down clean vet lint test-unit test test-faults test-faults-ha fuzz bench logs

# What this machine lacks for run/test (debootstrap, openssl, docker-compose,
# gcc; chromium for `make test`): installed with apt-get when running as
# root, otherwise named in one line. Also checks that Docker answers.
deps:
	scripts/ensure-deps.sh $(DEPS_FLAGS)

# bin/agent is static (it runs on any host); bin/scheduler needs cgo for SQLite.
# bin/cloudflared is the static stand-in for cloudflared in the workspace image
# (tools/cloudflared-standin; the real one cannot be fetched here). bin/testapp
# is the e2e suites' dev server, in the test-only image berth/workspace-test:dev.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/agent ./agent
	CGO_ENABLED=1 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/scheduler ./scheduler
	CGO_ENABLED=0 go build -trimpath -o bin/cloudflared ./tools/cloudflared-standin
	CGO_ENABLED=0 go build -trimpath -o bin/testapp ./scheduler/e2e/testapp

# Development CA, agent and scheduler certificates, gossip key, in .dev/.
certs: deps
	scripts/dev-certs.sh

# berth/{base,workspace,host,scheduler} from Debian packages: no registry needed.
images: deps build
	scripts/build-images.sh

run: certs images
	scripts/cluster-up.sh

# The same with three schedulers sharing the registry through raft
# (docker-compose.ha.yml): any of 3003, 3004, 3005 answers.
run-ha: certs images
	BERTH_HA=1 scripts/cluster-up.sh

# The scheduler's "image not found on server" error names this target.
load-workspace-images-dind:
	scripts/load-workspace-image.sh

down:
	BERTH_HA=1 $(COMPOSE) down --remove-orphans

clean:
	BERTH_HA=1 $(COMPOSE) down --volumes --remove-orphans
	rm -rf bin .dev
	docker image ls --format '{{.Repository}}:{{.Tag}}' 'berth/*' | xargs -r docker rmi

vet:
	go vet ./...

lint:
	$(GOLANGCI_LINT) run ./...

# Vet and the unit tests, without Docker images or the cluster: -short skips
# the tests that need Docker, images, or take long.
test-unit: vet
	go test -race -short -count=1 ./...
	BERTH_REGISTRY_RAFT=1 go test -race -short -count=1 ./scheduler/internal/registry/

# Everything: vet; lint; unit and integration tests (real SQLite, real Docker,
# real mTLS, real gossip between processes); then the end-to-end suites
# against the compose cluster, which this target brings up (it stays up
# afterwards). The browser tests need chromium: `deps` installs it here.
test: DEPS_FLAGS = --browser
# The test-only workspace image (the e2e test app): built by `images`, loaded
# into the hosts by cluster-up.sh.
test: export BERTH_TEST_IMAGES = 1
test: deps vet lint certs images
	scripts/test-summary.sh --reset
	go test -race -count=1 -v ./... 2>&1 | scripts/test-summary.sh unit+integration
	BERTH_REGISTRY_RAFT=1 go test -race -count=1 -v ./scheduler/internal/registry/ 2>&1 | scripts/test-summary.sh registry-on-raft
	scripts/fuzz.sh 2>&1 | scripts/test-summary.sh fuzz
	scripts/cluster-up.sh
	BERTH_E2E=1 go test -count=1 -v -timeout 25m ./scheduler/e2e/... 2>&1 | scripts/test-summary.sh e2e
	$(MAKE) test-faults
	$(MAKE) test-faults-ha
	scripts/test-summary.sh --total

# Every Go fuzz target (*_fuzz_test.go) for BERTH_FUZZTIME each (default
# 5s; about 3.5 minutes for all 22, builds included, on 2 cores); a finding fails, its
# input saved under the package's testdata/fuzz/. Plain go test runs the
# committed seed corpora.
fuzz:
	scripts/fuzz.sh

# Real faults against the running cluster: agent kill -9, host kill, network
# partition, scheduler kill -9 during 50 creates. Needs the cluster (make run).
test-faults:
	scripts/cluster-up.sh >/dev/null
	BERTH_E2E=1 BERTH_FAULTS=1 go test -count=1 -v -run '^TestFault' ./scheduler/e2e/ 2>&1 | scripts/test-summary.sh faults

# The HA fault suite (scheduler/e2e/ha_test.go) on three schedulers
# (make run-ha): the leader killed during 100 creates and nine more times, a
# follower partitioned, all three restarted, a disk wiped. Then the cluster
# goes back to one scheduler (make run's).
test-faults-ha:
	BERTH_HA=1 scripts/cluster-up.sh >/dev/null
	BERTH_E2E=1 BERTH_FAULTS=1 BERTH_HA=1 go test -count=1 -v -timeout 30m -run '^TestHA' ./scheduler/e2e/ 2>&1 | scripts/test-summary.sh faults-ha
	scripts/cluster-up.sh >/dev/null

# Benchmarks (figures in the README): placement, registry, create throughput
# with fake agents, and create-to-running against a plain Docker API call.
bench: images
	scripts/bench.sh

# SERVICE=ws-local-1 for one service.
logs:
	$(COMPOSE) logs --follow --tail=200 $(SERVICE)
