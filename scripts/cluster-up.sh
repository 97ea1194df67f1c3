#!/usr/bin/env bash
# cluster-up.sh: start the local cluster and wait until it is really up.
# docker-compose 1.29 has no `up --wait`, so this is it:
#
#   1. start the two hosts; wait until each one's own dockerd answers
#   2. load the workspace image into each host's dockerd (skipped when loaded;
#      with BERTH_TEST_IMAGES=1 also berth/workspace-test:dev)
#   3. wait until both hosts are healthy (dockerd AND the agent's port 7443)
#   4. start the scheduler (it depends on healthy hosts); wait until healthy
#   5. print what is running and where
#
# Any step that fails names the service, its state, its last health check
# output and its last log lines, and exits 1. The whole run has one deadline:
# BERTH_UP_TIMEOUT seconds (default 240).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/cluster-env.sh" # HOSTS, cid

deadline=$((SECONDS + ${BERTH_UP_TIMEOUT:-240}))

compose() { docker-compose "$@"; }
log() { printf 'cluster-up: %s\n' "$*" >&2; }

# status SERVICE: "running healthy", "running starting", "exited 1", "missing"...
status() {
	local id
	id=$(cid "$1")
	[[ -n $id ]] || { echo missing; return; }
	docker inspect -f '{{.State.Status}} {{if eq .State.Status "running"}}{{if .State.Health}}{{.State.Health.Status}}{{end}}{{else}}{{.State.ExitCode}}{{end}}' "$id"
}

# fail SERVICE REASON: say why SERVICE is not up, show the evidence, exit 1.
fail() {
	local svc=$1 reason=$2 id
	id=$(cid "$svc")
	{
		echo
		echo "cluster-up: FAILED: $svc: $reason (state: $(status "$svc"))"
		if [[ -n $id ]]; then
			echo "--- $svc: last health checks"
			docker inspect -f '{{with .State.Health}}{{range .Log}}exit {{.ExitCode}}: {{.Output}}{{println}}{{end}}{{end}}' "$id" |
				sed '/^\s*$/d' | tail -n 6 | sed 's/^/  /' | grep . || echo "  (none)"
			echo "--- $svc: last log lines"
			docker logs --tail 30 "$id" 2>&1 | sed 's/^/  /'
		fi
		echo "---"
		compose ps
	} >&2
	exit 1
}

# wait_until SERVICE WHAT CHECK...: poll CHECK until it succeeds; fail early
# when the container stops or turns unhealthy, or at the deadline.
wait_until() {
	local svc=$1 what=$2 st
	shift 2
	log "$svc: waiting for $what"
	until "$@" >/dev/null 2>&1; do
		st=$(status "$svc")
		case $st in
		running\ unhealthy) fail "$svc" "health check failing while waiting for $what" ;;
		running*) ;;
		*) fail "$svc" "container is not running while waiting for $what" ;;
		esac
		((SECONDS < deadline)) || fail "$svc" "no $what within ${BERTH_UP_TIMEOUT:-240}s"
		sleep 1
	done
}

inner_docker() { docker exec "$(cid "$1")" docker info; }
healthy() { [[ $(status "$1") == "running healthy" ]]; }

for f in .dev/pki/ca.crt .dev/pki/crl.pem .dev/gossip.key .dev/secrets.key; do
	[[ -s $f ]] || { log "error: $f is missing: run 'make certs'"; exit 1; }
done
for image in berth/host:dev berth/scheduler:dev berth/workspace:dev; do
	docker image inspect "$image" >/dev/null 2>&1 || { log "error: no image $image: run 'make images'"; exit 1; }
done

# up SERVICE...: docker-compose up -d, with a clear word when it fails.
up() {
	compose up -d "$@" && return
	log "FAILED: docker-compose could not start $* (its error is above)"
	[[ ${BERTH_DIND:-caps} != privileged ]] ||
		log "hint: this engine may not allow privileged containers; try without BERTH_DIND=privileged"
	exit 1
}

log "starting ${HOSTS[*]}"
up "${HOSTS[@]}"
for h in "${HOSTS[@]}"; do
	wait_until "$h" "its dockerd" inner_docker "$h"
done

workspace_images=(berth/workspace:dev)
# make test also loads the test-only image the e2e suites run their app in.
[[ ${BERTH_TEST_IMAGES:-0} != 1 ]] || workspace_images+=(berth/workspace-test:dev)
scripts/load-workspace-image.sh "${workspace_images[@]}"

for h in "${HOSTS[@]}"; do
	wait_until "$h" "a healthy host (dockerd and agent port 7443)" healthy "$h"
done

if ((${#SCHEDULERS[@]} == 1)); then # back from make run-ha: one scheduler, no raft
	for s in scheduler-2 scheduler-3; do
		id=$(cid "$s")
		[[ -z $id ]] || { log "removing $s (make run-ha's) and its data"; docker rm -f "$id" >/dev/null; }
		# The scheduler alone leaves the raft cluster (its raft state is moved
		# aside): the others' data would be a cluster it no longer belongs to.
		docker volume rm "${COMPOSE_PROJECT_NAME}_$s-data" >/dev/null 2>&1 || true
	done
fi
log "starting scheduler"
up scheduler
wait_until scheduler "a healthy scheduler (GET /health)" healthy scheduler
if ((${#SCHEDULERS[@]} > 1)); then # make run-ha: the others join the first
	log "starting ${SCHEDULERS[*]:1}"
	up "${SCHEDULERS[@]:1}"
	for s in "${SCHEDULERS[@]:1}"; do
		wait_until "$s" "a healthy scheduler (GET /health)" healthy "$s"
	done
fi

# Images that earlier builds replaced were kept while containers used them;
# now that the containers run the new ones, drop them. The filter matches
# only berth's images (every one derives from berth/base and keeps its label).
docker image prune -f --filter label=org.opencontainers.image.title=berth-base-bookworm >/dev/null 2>&1 || true

# What is running, and how to reach it.
env_of() { docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(cid "$1")" | sed -n "s/^$2=//p"; }
port_of() { docker port "$(cid "$1")" "$2/tcp" | head -n 1; }
url="http://$(port_of scheduler 3003)"
echo
echo "berth is running (compose project ${COMPOSE_PROJECT_NAME:-berth})"
echo "  scheduler     $url"
for s in "${SCHEDULERS[@]:1}"; do
	printf '  %-13s http://%s   (raft: any scheduler answers; GET /admin/cluster/raft)\n' "$s" "$(port_of "$s" 3003)"
done
echo "  admin panel   $url/admin/ui"
echo "  service token $(env_of scheduler INTERNAL_SERVICE_TOKEN)   (header X-Internal-Service-Token, with X-User-ID)"
echo "  admin token   $(env_of scheduler BERTH_ADMIN_TOKEN)"
for h in "${HOSTS[@]}"; do
	id=$(cid "$h")
	printf '  %-13s agent https://%s (mTLS, .dev/pki)   dockerd %s, %s\n' "$h" "$(port_of "$h" 7443)" \
		"$(docker exec "$id" docker version -f '{{.Server.Version}}')" \
		"$(docker exec "$id" docker info -f '{{.Driver}}, {{.Images}} images, {{.ContainersRunning}} containers running')"
done
echo "  logs: make logs    stop: make down    remove everything: make clean"
