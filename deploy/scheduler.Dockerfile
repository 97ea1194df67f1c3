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
	mkdir -p /var/lib/berth-scheduler

# The SQLite registry lives here; mount a volume over it.
VOLUME /var/lib/berth-scheduler
# 3003: compute API, admin API and panel (HTTP). 7946: gossip (memberlist).
EXPOSE 3003 7946 7946/udp

COPY bin/scheduler /usr/local/bin/berth-scheduler
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/berth-scheduler"]
CMD ["serve"]
