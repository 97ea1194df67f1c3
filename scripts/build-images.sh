#!/usr/bin/env bash
# build-images.sh: build every image berth needs, from Debian packages, with no
# container registry (DESIGN.md §5).
#
#   berth/base:bookworm    debootstrap minbase rootfs, `docker import`ed; the
#                          rootfs tarball is cached in .dev/cache/
#   berth/workspace:dev    deploy/workspace.Dockerfile  (what users work in)
#   berth/host:dev         deploy/host.Dockerfile       (dockerd + agent: a DinD host)
#   berth/scheduler:dev    deploy/scheduler.Dockerfile
#   berth/workspace-test:dev  deploy/workspace-test.Dockerfile: the workspace
#                          image plus the e2e test app (bin/testapp); only
#                          with BERTH_TEST_IMAGES=1, after the others
#
# The Dockerfiles start FROM ${BASE_IMAGE} (debian:bookworm-slim by default),
# so where a registry is reachable they build the ordinary way too; here the
# imported base stands in for it. Expects bin/agent, bin/scheduler and
# bin/cloudflared (make build); docker build checksums the copied files, so a
# changed binary rebuilds its image from that COPY on.
#
# Environment:
#   IMAGES="workspace host scheduler"  which Dockerfile images to build ("" = base only)
#   BERTH_TEST_IMAGES=1                 also build the test-only images (make test)
#   DEBIAN_MIRROR=http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR=http://deb.debian.org/debian-security
#   BASE_IMAGE=berth/base:bookworm     set to debian:bookworm-slim to skip debootstrap
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_IMAGE=${BASE_IMAGE:-berth/base:$SUITE}
IMAGES=${IMAGES-workspace host scheduler}
CACHE=.dev/cache
# The cache file is named after everything that goes into the rootfs: bump
# ROOTFS_REV when the recipe in make_rootfs changes.
ROOTFS_REV=1
ROOTFS_KEY=$(echo "$ROOTFS_REV $SUITE $MIRROR $SECURITY_MIRROR" | sha256sum | cut -c1-12)
ROOTFS_TAR=$CACHE/rootfs-$SUITE-minbase-$ROOTFS_KEY.tar

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# discard_rootfs DIR removes a debootstrap target, but never while anything is
# still mounted under it (debootstrap mounts /proc and /sys there).
discard_rootfs() {
	local dir=$1
	rm -f "$dir.log" "$ROOTFS_TAR.tmp"
	awk -v d="$(realpath "$dir")" 'index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
	if awk -v d="$(realpath "$dir")" 'index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
		log "warning: mounts remain under $dir; not removing it"
		return
	fi
	rm -rf "$dir"
}

# make_rootfs writes $ROOTFS_TAR: a minbase Debian with apt sources for the
# release, updates and security, and the dpkg excludes of the official slim
# images (no docs, man pages or translations).
make_rootfs() {
	command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install -y debootstrap)"
	[[ $(id -u) == 0 ]] || die "debootstrap needs root"
	mkdir -p "$CACHE"
	local dir
	dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
	# debootstrap mounts /proc and /sys in the target; never leave them behind.
	trap 'discard_rootfs "'"$dir"'"' EXIT
	log "debootstrap $SUITE (minbase) from $MIRROR"
	debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
		{ tail -n 30 "$dir.log" >&2; rm -f "$dir.log"; die "debootstrap failed"; }
	rm -f "$dir.log"

	rm -f "$dir/etc/apt/sources.list"
	cat >"$dir/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $MIRROR
		Suites: $SUITE $SUITE-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: $SECURITY_MIRROR
		Suites: $SUITE-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-include /usr/share/locale/locale.alias
		path-exclude /usr/share/lintian/*
	EOF
	cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
		Acquire::Languages "none";
	EOF
	find "$dir/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
	rm -rf "$dir"/usr/share/{man,info,lintian}/* "$dir"/var/lib/apt/lists/* \
		"$dir"/var/cache/apt/* "$dir"/var/log/* "$dir"/tmp/*
	find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
	: >"$dir/etc/machine-id"

	tar --numeric-owner --xattrs -C "$dir" --exclude='./dev/*' --exclude='./proc/*' \
		--exclude='./sys/*' -cf "$ROOTFS_TAR.tmp" .
	sha256sum <"$ROOTFS_TAR.tmp" | cut -d' ' -f1 >"$ROOTFS_TAR.sha256"
	mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
	discard_rootfs "$dir"
	trap - EXIT
	# Drop the tarballs of older recipe revisions.
	find "$CACHE" -maxdepth 1 -name "rootfs-$SUITE-*.tar*" -not -name "$(basename "$ROOTFS_TAR")*" -delete
}

# build_base imports the cached rootfs as $BASE_IMAGE, unless the image there
# already came from the same tarball.
build_base() {
	local t0 sum have
	t0=$(now)
	if [[ ! -s $ROOTFS_TAR || ! -s $ROOTFS_TAR.sha256 ]]; then
		make_rootfs
	else
		log "rootfs: using cached $ROOTFS_TAR"
	fi
	sum=$(cat "$ROOTFS_TAR.sha256")
	have=$(docker image inspect -f '{{index .Config.Labels "berth.rootfs.sha256"}}' "$BASE_IMAGE" 2>/dev/null || true)
	if [[ $have == "$sum" ]]; then
		log "$BASE_IMAGE: up to date"
	else
		docker import \
			--change "LABEL berth.rootfs.sha256=$sum org.opencontainers.image.title=berth-base-$SUITE" \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'CMD ["bash"]' \
			"$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
	fi
	log "$BASE_IMAGE: $(took "$t0")"
}

# build NAME: docker build deploy/NAME.Dockerfile as berth/NAME:dev.
build() {
	local name=$1 t0
	t0=$(now)
	local out=.dev/logs/build-$name.log old
	mkdir -p .dev/logs
	old=$(docker image inspect -f '{{.Id}}' "berth/$name:dev" 2>/dev/null || true)
	# The legacy builder: this engine has no BuildKit client (no buildx).
	if ! DOCKER_BUILDKIT=0 docker build --file "deploy/$name.Dockerfile" \
		--build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "berth/$name:dev" . >"$out" 2>&1; then
		tail -n 40 "$out" | sed "s|^|  $name: |" >&2
		log "error: berth/$name:dev failed to build (full log: $out)"
		return 1
	fi
	log "berth/$name:dev: $(took "$t0")"
	# Drop the image this build replaced, unless a container still uses it.
	if [[ -n $old && $old != "$(docker image inspect -f '{{.Id}}' "berth/$name:dev")" ]]; then
		docker rmi "$old" >/dev/null 2>&1 || true
	fi
}

[[ -x bin/agent && -x bin/scheduler && -x bin/cloudflared ]] ||
	die "bin/agent, bin/scheduler or bin/cloudflared is missing: run 'make build' first"

start=$(now)
if [[ $BASE_IMAGE == berth/base:* ]]; then
	build_base
fi
# The builds are mostly apt downloads: run them side by side.
pids=()
for name in $IMAGES; do
	build "$name" &
	pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
	wait "$pid" || failed=1
done
((failed == 0)) || die "some images failed to build"
# Test-only images derive from berth/workspace:dev: built after it.
if [[ ${BERTH_TEST_IMAGES:-0} == 1 ]]; then
	[[ -x bin/testapp ]] || die "bin/testapp is missing: run 'make build' first"
	build workspace-test || die "the test image failed to build"
fi
log "all images: $(took "$start")"
docker image ls --format '  {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' 'berth/*' >&2
