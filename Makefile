# berth: binaries, images and the local two-host cluster. The recipes only call
# go, docker and scripts/; the logic lives in the scripts.
#   make run     build everything and start the cluster (2 DinD hosts + scheduler)
#   make down    stop it, keeping its volumes;  make clean  remove everything
# BERTH_DIND=privileged uses privileged DinD hosts where the engine allows it.

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X berth/shared/version.Version=$(VERSION)
COMPOSE := scripts/compose.sh

.PHONY: build certs images run load-workspace-images-dind down clean test test-faults bench logs

# bin/agent is static (it runs on any host); bin/scheduler needs cgo for SQLite.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/agent ./agent
	CGO_ENABLED=1 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/scheduler ./scheduler

# Development CA, agent and scheduler certificates, gossip key, in .dev/.
certs:
	scripts/dev-certs.sh

# berth/{base,workspace,host,scheduler} from Debian packages: no registry needed.
images: build
	scripts/build-images.sh

run: certs images
	scripts/cluster-up.sh

# The scheduler's "image not found on server" error names this target.
load-workspace-images-dind:
	scripts/load-workspace-image.sh

down:
	$(COMPOSE) down --remove-orphans

clean:
	$(COMPOSE) down --volumes --remove-orphans
	rm -rf bin .dev
	docker image ls --format '{{.Repository}}:{{.Tag}}' 'berth/*' | xargs -r docker rmi

# Everything: vet; unit and integration tests (real SQLite, real Docker, real
# mTLS, real gossip between processes); then the end-to-end suites against
# the compose cluster, which this target brings up (it stays up afterwards).
test: certs images
	go vet ./...
	scripts/test-summary.sh --reset
	go test -race -count=1 -v ./... 2>&1 | scripts/test-summary.sh unit+integration
	scripts/cluster-up.sh
	BERTH_E2E=1 go test -count=1 -v ./scheduler/e2e/... 2>&1 | scripts/test-summary.sh e2e
	$(MAKE) test-faults
	scripts/test-summary.sh --total

# Real faults against the running cluster: agent kill -9, host kill, network
# partition, scheduler kill -9 during 50 creates. Needs the cluster (make run).
test-faults:
	scripts/cluster-up.sh >/dev/null
	BERTH_E2E=1 BERTH_FAULTS=1 go test -count=1 -v -run '^TestFault' ./scheduler/e2e/ 2>&1 | scripts/test-summary.sh faults

# Benchmarks (figures in the README): placement, registry, create throughput
# with fake agents, and create-to-running against a plain Docker API call.
bench: images
	scripts/bench.sh

# SERVICE=ws-local-1 for one service.
logs:
	$(COMPOSE) logs --follow --tail=200 $(SERVICE)
