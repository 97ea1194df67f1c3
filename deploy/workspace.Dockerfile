# berth/workspace:dev: the container a user works in (terminal, git, previews,
# tunnels). Build context: the repository root; it copies bin/cloudflared
# (make build) and nothing else from it.
#   docker build -f deploy/workspace.Dockerfile -t berth/workspace:dev .
# Without a registry, scripts/build-images.sh passes
# --build-arg BASE_IMAGE=berth/base:bookworm (a debootstrap rootfs).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# iproute2 (ss) and procps (pgrep) are what the compute API's preview-ports
# and tunnel routes run in here. bash, zsh and fish are the terminal's shells
# (Debian's fish depends on python3, so python3 comes in with it).
RUN set -eux; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		bash ca-certificates coreutils curl fish git iproute2 less procps tini tmux zsh; \
	rm -rf /var/lib/apt/lists/*

# The user every exec, file operation and terminal runs as (compute API
# contract: user dev, uid/gid 1000, home /home/dev, which the agent bind-mounts
# from the workspace's data directory).
#
# Sudo is a per-image choice (README "Workspace sandbox"). The agent runs
# every workspace with no-new-privileges, under which setuid binaries like
# sudo cannot raise privileges, so by default this image has no sudo at all.
# --build-arg WORKSPACE_SUDO=yes installs it with passwordless sudo for dev;
# it then works only where the scheduler sends the new_privileges exception
# (BERTH_SANDBOX_EXCEPTIONS=new_privileges), and root gets only the sandbox's
# minimal capabilities, inside gVisor where the host runs it.
ARG WORKSPACE_SUDO=no
LABEL berth.sandbox.sudo=${WORKSPACE_SUDO}
RUN set -eux; \
	groupadd --gid 1000 dev; \
	useradd --uid 1000 --gid 1000 --create-home --home-dir /home/dev --shell /bin/bash dev; \
	if [ "$WORKSPACE_SUDO" = yes ]; then \
		apt-get update; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sudo; \
		rm -rf /var/lib/apt/lists/*; \
		echo 'dev ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/dev; \
		chmod 0440 /etc/sudoers.d/dev; \
		visudo -cf /etc/sudoers.d/dev; \
	fi

# The tunnel routes start `cloudflared tunnel run --token … [--url …]` as dev
# (contract §3.19). This is berth's stand-in (tools/cloudflared-standin): same
# command line, logs and metrics endpoint, but it connects to no Cloudflare
# edge. After the package layers, so a rebuilt stand-in does not invalidate them.
COPY bin/cloudflared /usr/local/bin/cloudflared

ENV LANG=C.UTF-8
USER dev
WORKDIR /home/dev
# tini is PID 1: it reaps what exec sessions leave behind and passes SIGTERM
# on, so `docker stop` returns at once instead of after the 10 s grace period.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sleep", "infinity"]
