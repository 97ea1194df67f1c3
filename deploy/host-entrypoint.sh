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
#   BERTH_RUNSC              auto   gVisor for workspaces: auto (probe, register if it works) or off
#   BERTH_RUNSC_PLATFORMS    "systrap kvm ptrace"   tried in order; the first that runs a container wins
#   BERTH_RUNSC_STATE        /run/berth/runsc-state   the probe's outcome, which the agent reports
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

# Loop devices for the agent's per-home quota images (BERTH_DISK_QUOTA=loop).
# A real host has them; a DinD host sees none, and its device cgroup refuses
# them. With cgroup v1 and CAP_SYS_ADMIN we allow loop devices (block major 7,
# /dev/loop-control) in this container's own device cgroup and make their
# nodes. Loop devices are the kernel's, shared with the machine. Where this
# fails the agent's probe finds no working quota and says so.
enable_loop_devices() {
	[[ -e /dev/loop-control ]] && return 0
	local cg
	cg=$(awk -F: '$2 == "devices" { print $3 }' /proc/self/cgroup)
	if [[ -n $cg && -w /sys/fs/cgroup/devices$cg/devices.allow ]]; then
		echo 'c 10:237 rwm' >"/sys/fs/cgroup/devices$cg/devices.allow" 2>/dev/null || true
		echo 'b 7:* rwm' >"/sys/fs/cgroup/devices$cg/devices.allow" 2>/dev/null || true
	fi
	mknod -m 0660 /dev/loop-control c 10 237 2>/dev/null || { log "warning: no loop devices: disk quotas unavailable"; return 0; }
	local i
	for ((i = 0; i < 256; i++)); do
		[[ -e /dev/loop$i ]] || mknod -m 0660 "/dev/loop$i" b 7 "$i" 2>/dev/null || true
	done
}
enable_loop_devices

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

# gVisor. Before dockerd, `runsc do` finds the first platform this kernel
# runs (systrap needs a newer runsc than Debian bookworm's; kvm needs
# /dev/kvm; ptrace works almost anywhere). It is registered as the runtime
# "runsc", then a probe container must run under it through dockerd. The
# probe's outcome goes to $runsc_state for the agent, which runs workspaces
# under runsc only when dockerd has it and reports the fallback otherwise.
runsc_state=${BERTH_RUNSC_STATE:-/run/berth/runsc-state}
runsc_platform=
runsc_args=()
mkdir -p "$(dirname "$runsc_state")"
write_daemon_json() { # the runtimes dockerd reloads on SIGHUP
	mkdir -p /etc/docker
	if [[ -n $runsc_platform ]]; then
		local a json=""
		for a in "${runsc_args[@]}"; do json+="${json:+,}\"$a\""; done
		printf '{"runtimes": {"runsc": {"path": "%s", "runtimeArgs": [%s]}}}\n' "$(command -v runsc)" "$json" >/etc/docker/daemon.json
	else
		echo '{}' >/etc/docker/daemon.json
	fi
}
probe_runsc_platform() {
	if [[ ${BERTH_RUNSC:-auto} == off ]]; then
		echo "off (BERTH_RUNSC=off)" >"$runsc_state"
		return
	fi
	if ! command -v runsc >/dev/null; then
		echo "unavailable: runsc is not installed" >"$runsc_state"
		return
	fi
	local p out netargs=()
	# A restarted host: dockerd restarts its containers before the probe
	# below has run, so keep the network mode the last probe found.
	[[ -f $runsc_state && $(<"$runsc_state") == *"network host"* ]] && netargs=(--network=host)
	for p in ${BERTH_RUNSC_PLATFORMS:-systrap kvm ptrace}; do
		if out=$(timeout 30 runsc --platform="$p" --network=none do /bin/true 2>&1); then
			runsc_platform=$p
			# --overlay2=none: no overlay filestore in the container's rootfs,
			# which a killed host leaves behind and a later start refuses.
			runsc_args=(--platform="$p" --overlay2=none "${netargs[@]}")
			log "runsc: platform $p works"
			return
		fi
		log "runsc: platform $p does not work here: $(tail -n 1 <<<"$out")"
	done
	echo "unavailable: no runsc platform works here (tried ${BERTH_RUNSC_PLATFORMS:-systrap kvm ptrace})" >"$runsc_state"
}
probe_runsc_platform
write_daemon_json

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

# The probe container: busybox alone, imported (no registry). Bookworm's
# runsc refuses its own network stack on recent kernels ("cannot run with
# network enabled in root network namespace": it mistakes the container's
# namespace for the host's), so on that error it is registered again with
# --network=host: the sandbox then uses the container's network namespace
# through the host kernel instead of gVisor's netstack (Docker's network
# isolation holds; the network syscalls are not intercepted).
reload_dockerd() { # write daemon.json, SIGHUP, wait until dockerd shows it
	write_daemon_json
	kill -HUP "$dockerd_pid"
	local i rt
	for ((i = 0; i < 100; i++)); do
		rt=$(docker info -f '{{json .Runtimes}}' 2>/dev/null || true)
		if [[ -z $runsc_platform ]]; then
			[[ $rt != *'"runsc"'* ]] && return 0
		elif [[ $rt == *"${runsc_args[-1]}"* ]]; then
			return 0
		fi
		sleep 0.1
	done
	log "warning: dockerd did not reload its runtimes within 10s"
}
probe_runsc_container() {
	[[ -n $runsc_platform ]] || return 0
	local dir out
	dir=$(mktemp -d)
	mkdir "$dir/bin"
	cp /bin/busybox "$dir/bin/busybox"
	tar -C "$dir" -c . | docker import - berth/runsc-probe:local >/dev/null
	rm -rf "$dir"
	if out=$(docker run --rm --runtime=runsc berth/runsc-probe:local /bin/busybox true 2>&1); then
		if [[ " ${runsc_args[*]} " == *" --network=host "* ]]; then
			echo "ok: platform $runsc_platform, network host (kept from the last probe)" >"$runsc_state"
		else
			echo "ok: platform $runsc_platform" >"$runsc_state"
		fi
		log "runsc: registered (platform $runsc_platform ${runsc_args[*]})"
		return
	fi
	if [[ $out == *"root network namespace"* ]]; then
		runsc_args+=(--network=host)
		reload_dockerd
		if out=$(docker run --rm --runtime=runsc berth/runsc-probe:local /bin/busybox true 2>&1); then
			echo "ok: platform $runsc_platform, network host (this runsc cannot run its own network stack on this kernel)" >"$runsc_state"
			log "runsc: registered (platform $runsc_platform, --network=host)"
			return
		fi
	fi
	log "runsc: the probe container failed; workspaces will run under runc: $out"
	echo "unavailable: the probe container failed under runsc: $(tail -n 1 <<<"$out")" >"$runsc_state"
	runsc_platform=
	reload_dockerd
}
probe_runsc_container

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
