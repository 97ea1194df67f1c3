# shellcheck shell=bash
# cluster-env.sh: sourced by the local-cluster scripts (compose.sh,
# cluster-up.sh, load-workspace-image.sh) so they agree on the compose setup.
#
# - One compose project name (berth) wherever the checkout lives, so volumes
#   and the network keep their names.
# - BERTH_HA=1: three schedulers on raft instead of one (make run-ha).
# - BERTH_DIND=caps (default) uses the capability-list DinD of
#   docker-compose.yml, which works where --privileged does not;
#   BERTH_DIND=privileged adds deploy/compose.privileged.yml.
# It changes to the repository root.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-berth}
case ${BERTH_DIND:-caps} in
caps) export COMPOSE_FILE=docker-compose.yml ;;
privileged) export COMPOSE_FILE=docker-compose.yml:deploy/compose.privileged.yml ;;
*) echo "BERTH_DIND=$BERTH_DIND: want caps or privileged" >&2; exit 2 ;;
esac
# BERTH_HA=1 (make run-ha) adds two schedulers and raft (docker-compose.ha.yml).
# shellcheck disable=SC2034 # used by the scripts that source this file
SCHEDULERS=(scheduler)
if [[ ${BERTH_HA:-0} == 1 ]]; then
	COMPOSE_FILE+=:docker-compose.ha.yml
	SCHEDULERS+=(scheduler-2 scheduler-3)
fi
# The workspace hosts of the local cluster.
# shellcheck disable=SC2034 # used by the scripts that source this file
read -ra HOSTS <<<"${BERTH_HOSTS:-ws-local-1 ws-local-2}"

# cid SERVICE: the id of the service's container, running or not ("" if none).
# Docker's own labels: much faster than `docker-compose ps -q`.
cid() {
	docker ps -aq --no-trunc --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
		--filter "label=com.docker.compose.service=$1" | head -n 1
}
