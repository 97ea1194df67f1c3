#!/usr/bin/env bash
# host-entrypoint.sh: PID 2 of a berth/host container (tini is PID 1). It does
# what systemd does on a real workspace host: start dockerd, wait until it
# answers, then start the agent beside it; if either of them dies, stop the
# other and exit non-zero, so the container (the "host") is seen to fail.
# SIGTERM stops the agent first, then dockerd (which stops its containers).
#
# dockerd listens on its unix socket only: berth never opens a Docker TCP port,
# and this script refuses to pass one on.
#
# Environment (besides the agent's own BERTH_* settings):
#   BERTH_DOCKER_HOST        unix:///var/run/docker.sock   the socket dockerd serves
#   BERTH_DIND_BIP           e.g. 10.210.1.1/24   inner docker0; distinct per host
#   BERTH_DIND_ADDRESS_POOL  e.g. 10.211.0.0/16   inner user-defined networks (/24 each)
#   BERTH_DIND_MTU           default: the MTU of this container's default route
#   BERTH_DOCKERD_LOG_LEVEL  warn
#   BERTH_DOCKERD_ARGS       extra dockerd flags (word-split)
#   BERTH_DOCKERD_TIMEOUT    60   seconds to wait for dockerd
set -euo pipefail

log() { printf '%s host-entrypoint: %s\n' "$(date -u +%FT%T.%3NZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

docker_host=${BERTH_DOCKER_HOST:-unix:///var/run/docker.sock}
[[ $docker_host == unix://* ]] || die "BERTH_DOCKER_HOST=$docker_host: only a unix:// socket is allowed"
export DOCKER_HOST=$docker_host # for this script's own docker calls

args=(--host="$docker_host" --log-level="${BERTH_DOCKERD_LOG_LEVEL:-warn}")
[[ -n ${BERTH_DIND_BIP:-} ]] && args+=(--bip="$BERTH_DIND_BIP")
[[ -n ${BERTH_DIND_ADDRESS_POOL:-} ]] && args+=(--default-address-pool="base=$BERTH_DIND_ADDRESS_POOL,size=24")

# Inner containers must not send bigger packets than this container's own
# network carries, or their TLS connections stall on some networks.
mtu=${BERTH_DIND_MTU:-}
if [[ -z $mtu ]]; then
	dev=$(ip route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
	[[ -n $dev && -r /sys/class/net/$dev/mtu ]] && mtu=$(</sys/class/net/"$dev"/mtu)
fi
[[ -n $mtu ]] && args+=(--mtu="$mtu")

# Place the inner containers' cgroups under this container's own cgroup, as a
# real host's containers sit under its /docker: this host's limits and
# accounting then cover its workspaces, and the two local hosts never share a
# cgroup parent with each other or with the outer engine's containers.
nest_cgroups() {
	if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
		# cgroup v2 in a private cgroup namespace (privileged mode on a normal
		# machine): what upstream docker:dind does. The root may hold no
		# processes once controllers are delegated, so move them to /init.
		# Only when the hierarchy we see is really our own (our PID is in its root).
		grep -qx "$$" /sys/fs/cgroup/cgroup.procs 2>/dev/null || return 0
		mkdir -p /sys/fs/cgroup/init
		xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
		sed -e 's/ / +/g' -e 's/^/+/' /sys/fs/cgroup/cgroup.controllers \
			>/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		return 0
	fi
	# cgroup v1 with the host's hierarchy mounted: /proc/self/cgroup names our
	# cgroup in it, e.g. /docker/<id>.
	local own
	own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
	if [[ -n $own && $own != / && -d /sys/fs/cgroup/memory$own && -w /sys/fs/cgroup/memory$own ]]; then
		args+=(--cgroup-parent="$own/docker")
	fi
}
nest_cgroups

if [[ -n ${BERTH_DOCKERD_ARGS:-} ]]; then
	read -ra extra <<<"$BERTH_DOCKERD_ARGS"
	args+=("${extra[@]}")
fi
for a in "${args[@]}"; do
	[[ $a == *tcp://* || $a == *fd://* ]] && die "refusing dockerd argument $a: dockerd listens on its unix socket only"
done

# Docker mounts /proc/sys read-only in unprivileged containers, and compose
# cannot ask for `--security-opt systempaths=unconfined`; with CAP_SYS_ADMIN we
# make it writable again (this container's own namespaces only), so dockerd can
# set the network sysctls of its bridges as on a real host.
if grep -qE '^\S+ /proc/sys \S+ ro[ ,]' /proc/self/mounts; then
	mount -o remount,rw,bind /proc/sys /proc/sys 2>/dev/null ||
		log "warning: /proc/sys is read-only; dockerd cannot tune its bridges' sysctls"
fi

mountpoint -q /var/lib/docker ||
	log "warning: /var/lib/docker is not a volume; dockerd will fall back to the slow vfs driver"

# A container restart keeps /run: clear the pid files of the previous run.
find /run /var/run -maxdepth 3 \( -name 'docker*.pid' -o -name 'containerd*.pid' \) -delete 2>/dev/null || true

agent_pid=      # the supervisor loop
dockerd_pid=
agent_pidfile=/run/berth-agent.pid

stop() { # stop PID NAME SECONDS: SIGTERM, then SIGKILL after SECONDS
	local pid=$1 name=$2 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	log "stopping $name"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < $3 * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

shutdown() {
	trap '' TERM INT
	log "shutting down"
	[[ -n $agent_pid ]] && kill -KILL "$agent_pid" 2>/dev/null # the supervisor: no restarts
	[[ -s $agent_pidfile ]] && stop "$(<"$agent_pidfile")" agent 10
	stop "$dockerd_pid" dockerd 20
	exit "${1:-0}"
}
trap shutdown TERM INT

log "starting dockerd ${args[*]}"
dockerd "${args[@]}" &
dockerd_pid=$!

deadline=$((SECONDS + ${BERTH_DOCKERD_TIMEOUT:-60}))
until docker info >/dev/null 2>&1; do
	kill -0 "$dockerd_pid" 2>/dev/null || { wait "$dockerd_pid" && rc=0 || rc=$?; die "dockerd exited with status $rc before it was ready"; }
	((SECONDS < deadline)) || { log "error: dockerd not ready after ${BERTH_DOCKERD_TIMEOUT:-60}s"; shutdown 1; }
	sleep 0.2
done
log "dockerd ready: $(docker version -f 'engine {{.Server.Version}}, api {{.Server.APIVersion}}'), $(docker info -f 'storage driver {{.Driver}}, cgroup {{.CgroupVersion}}')"
[[ $(docker info -f '{{.Driver}}') != vfs ]] || log "warning: dockerd uses the vfs storage driver (slow); mount a volume on /var/lib/docker"

supervise_agent() {
	trap - TERM INT
	while true; do
		log "starting agent"
		/usr/local/bin/berth-agent &
		echo $! >"$agent_pidfile"
		rc=0
		wait $! || rc=$?
		log "agent exited with status $rc; restarting in 1s"
		sleep 1
	done
}
supervise_agent &
agent_pid=$!

# The host lives as long as its dockerd; a signal interrupts the wait and runs
# shutdown instead.
rc=0
wait "$dockerd_pid" || rc=$?
log "error: dockerd exited with status $rc"
shutdown "$((rc == 0 ? 1 : rc))"
