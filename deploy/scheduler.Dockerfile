# berth/scheduler:dev: the scheduler (compute API, admin API and panel,
# registry, placement). Build context: the repository root, after `make build`
# (bin/scheduler is a cgo build for SQLite, linked against Debian bookworm's glibc).
#   docker build -f deploy/scheduler.Dockerfile -t berth/scheduler:dev .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

RUN set -eux; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		ca-certificates curl tini; \
	rm -rf /var/lib/apt/lists/*; \
	groupadd --system --gid 10001 berth; \
	useradd --system --uid 10001 --gid berth --no-create-home --home-dir /var/lib/berth-scheduler \
		--shell /usr/sbin/nologin berth; \
	mkdir -p /var/lib/berth-scheduler; \
	chown berth:berth /var/lib/berth-scheduler; \
	chmod 0700 /var/lib/berth-scheduler

# The SQLite registry lives here; mount a volume over it. A new named volume
# takes this directory's owner (berth); the entrypoint fixes an older one.
VOLUME /var/lib/berth-scheduler
# 3003: compute API, admin API and panel (HTTP). 7946: gossip (memberlist).
EXPOSE 3003 7946 7946/udp

COPY bin/scheduler /usr/local/bin/berth-scheduler
COPY deploy/scheduler-entrypoint.sh /usr/local/bin/berth-scheduler-entrypoint
# The scheduler itself runs as berth (uid 10001), with no capability (see
# scheduler-entrypoint.sh): the container starts as root only for the
# entrypoint to fix the data volume's owner and drop root for good.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/berth-scheduler-entrypoint", "/usr/local/bin/berth-scheduler"]
CMD ["serve"]
