#!/usr/bin/env bash
# compose.sh ARGS...: docker-compose for the local cluster, from any directory,
# with the project name and DinD mode of scripts/cluster-env.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/cluster-env.sh"
exec docker-compose "$@"
