# berth/host:dev: one workspace host for local runs: its own dockerd (reached
# only through its unix socket) with the berth agent beside it, started by
# deploy/host-entrypoint.sh the way systemd starts them on a real host.
# Build context: the repository root, after `make build` (bin/agent is static).
#   docker build -f deploy/host.Dockerfile -t berth/host:dev .
# Run it as docker-compose.yml does: it needs most capabilities (or
# --privileged), a volume on /var/lib/docker and a writable cgroup hierarchy.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# docker.io brings dockerd, containerd, runc and tini. runsc is gVisor, the
# workspaces' runtime (host-entrypoint.sh probes it and registers it with
# dockerd); busybox-static is the probe container's only binary. e2fsprogs
# (mkfs.ext4, resize2fs) and mount make the agent's per-home quota images.
#
# runsc comes from Debian trixie (0.0~20240729, a static binary with no
# dependencies), pinned so that nothing else does: bookworm's 0.0~20221219
# has no systrap platform and refuses statx(AT_NO_AUTOMOUNT), so `ls -l` and
# `stat` fail inside its sandboxes (EINVAL). RUNSC_SUITE=bookworm keeps
# bookworm's.
ARG RUNSC_SUITE=trixie
RUN set -eux; \
	if [ "$RUNSC_SUITE" != bookworm ]; then \
		uri=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources | head -n 1); \
		printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"${uri:-http://deb.debian.org/debian}" "$RUNSC_SUITE" >/etc/apt/sources.list.d/runsc.sources; \
		printf 'Package: *\nPin: release n=%s\nPin-Priority: 1\n\nPackage: runsc\nPin: release n=%s\nPin-Priority: 990\n' \
			"$RUNSC_SUITE" "$RUNSC_SUITE" >/etc/apt/preferences.d/runsc; \
	fi; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		busybox-static ca-certificates docker.io e2fsprogs iproute2 iptables mount procps runsc; \
	runsc --version; \
	rm -rf /var/lib/apt/lists/*; \
	mkdir -p /var/lib/berth

# The inner daemon's storage must not sit on the container's own overlay
# filesystem (overlay2 cannot nest there and dockerd falls back to vfs), so
# it always gets a volume, an anonymous one if none is mounted.
VOLUME /var/lib/docker /var/lib/berth
# 7443: the agent's mTLS API. 7946: gossip (memberlist).
EXPOSE 7443 7946 7946/udp

COPY deploy/host-entrypoint.sh /usr/local/bin/host-entrypoint.sh
COPY bin/agent /usr/local/bin/berth-agent
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/host-entrypoint.sh"]
