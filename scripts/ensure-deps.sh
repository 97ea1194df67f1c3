#!/usr/bin/env bash
# ensure-deps.sh [--browser] [--no-docker]: make sure this machine has what
# `make run` / `make test` need, installing the missing Debian packages.
#
#   openssl         the development certificates (scripts/pki.sh)
#   debootstrap     the root filesystem of every image (scripts/build-images.sh)
#   docker-compose  the local cluster (scripts/compose.sh, scripts/cluster-up.sh)
#   gcc             cgo, for bin/scheduler (SQLite) and `go test -race`
#   chromium        with --browser: the admin panel's browser tests look for
#                   /usr/bin/chromium (Debian's package), or $BERTH_CHROMIUM
#
# Nothing missing: silent, exit 0. Missing and root: one `apt-get update` and
# one `apt-get install -y` of exactly what is missing. Missing and not root:
# one line naming the packages to install, exit 1.
# Then, unless --no-docker, the Docker engine must answer (`docker info`); if
# it does not, one line says so and the script exits 1. It does not start
# Docker (.ci/run does, on CI machines).
set -euo pipefail

browser=0 docker=1
for arg; do
	case $arg in
	--browser) browser=1 ;;
	--no-docker) docker=0 ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "ensure-deps: unknown option $arg (want --browser, --no-docker)" >&2; exit 2 ;;
	esac
done

# have CMD: CMD is on PATH, or in an sbin directory that a non-root PATH lacks.
have() { command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]]; }

missing=()
have openssl || missing+=(openssl)
have debootstrap || missing+=(debootstrap)
have docker-compose || missing+=(docker-compose)
have gcc || missing+=(gcc) # cgo's default compiler is gcc
if ((browser)); then
	if [[ -n ${BERTH_CHROMIUM:-} ]]; then
		# A browser of the user's choosing: installing Debian's would not help.
		[[ -x $BERTH_CHROMIUM ]] || { echo "ensure-deps: BERTH_CHROMIUM=$BERTH_CHROMIUM is not an executable file" >&2; exit 1; }
	elif [[ ! -x /usr/bin/chromium ]]; then
		missing+=(chromium)
	fi
fi

if ((${#missing[@]})); then
	if [[ $(id -u) != 0 ]]; then
		echo "ensure-deps: missing ${missing[*]}: as root, run: apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "ensure-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT
	if ! { apt-get update -q && apt-get install -y -q "${missing[@]}"; } </dev/null >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		echo "ensure-deps: apt-get could not install ${missing[*]} (its output is above)" >&2
		exit 1
	fi
	for p in "${missing[@]}"; do
		case $p in
		chromium) [[ -x /usr/bin/chromium ]] ;;
		*) have "$p" ;;
		esac || { echo "ensure-deps: $p was installed but is still not found" >&2; exit 1; }
	done
fi

if ((docker)); then
	if ! command -v docker >/dev/null 2>&1; then
		echo "ensure-deps: no docker command: berth needs a running Docker engine (Debian: apt-get install docker.io)" >&2
		exit 1
	fi
	if ! err=$(timeout 30 docker info 2>&1 >/dev/null); then
		err=$(printf '%s\n' "$err" | grep -m1 -v '^\s*$' || true)
		echo "ensure-deps: the Docker engine does not answer (${err:-docker info failed}): start it (service docker start, or dockerd) and retry" >&2
		exit 1
	fi
fi
