#!/usr/bin/env bash
# load-workspace-image.sh [IMAGE...]: copy workspace images (default
# berth/workspace:dev) from this machine's engine into the dockerd of each
# local host, the way a real host gets its images without a registry:
#   docker save IMAGE | (in the host) docker load
# A host whose dockerd already has the same image id is skipped; the image a
# load replaces is removed unless a container uses it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/cluster-env.sh"

(($#)) || set -- berth/workspace:dev
log() { printf 'load-workspace-image: %s\n' "$*" >&2; }

for host in "${HOSTS[@]}"; do
	id=$(cid "$host")
	[[ -n $id ]] || { log "error: $host is not running (make run)"; exit 1; }
	for image in "$@"; do
		want=$(docker image inspect -f '{{.Id}}' "$image") ||
			{ log "error: no image $image here (make images)"; exit 1; }
		have=$(docker exec "$id" docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
		if [[ $have == "$want" ]]; then
			log "$host: $image already loaded"
			continue
		fi
		start=$SECONDS
		docker save "$image" | docker exec -i "$id" docker load >/dev/null
		log "$host: loaded $image (${want:7:12}) in $((SECONDS - start)) s"
		# The image it replaced goes too, unless a workspace still uses it.
		[[ -z $have ]] || docker exec "$id" docker rmi "$have" >/dev/null 2>&1 || true
	done
done
