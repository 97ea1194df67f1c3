# berth/host:dev: one workspace host for local runs: its own dockerd (reached
# only through its unix socket) with the berth agent beside it, started by
# deploy/host-entrypoint.sh the way systemd starts them on a real host.
# Build context: the repository root, after `make build` (bin/agent is static).
#   docker build -f deploy/host.Dockerfile -t berth/host:dev .
# Run it as docker-compose.yml does: it needs most capabilities (or
# --privileged), a volume on /var/lib/docker and a writable cgroup hierarchy.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# docker.io brings dockerd, containerd, runc and tini.
RUN set -eux; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		ca-certificates docker.io iproute2 iptables procps; \
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
