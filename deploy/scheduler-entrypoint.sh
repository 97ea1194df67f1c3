#!/bin/sh
# scheduler-entrypoint.sh: runs the scheduler as the unprivileged user berth
# (uid/gid 10001), never as root. tini (PID 1) starts it; it execs the
# command ("berth-scheduler serve" by default).
#
# Started as root (the image's default user, so that it can do this):
#   1. the data directory (BERTH_DATA_DIR, /var/lib/berth-scheduler) is made
#      berth's. A new named volume copies the image directory's ownership
#      (berth) on first use; a volume made by an earlier image that ran as
#      root keeps root's, so it is chowned here, once (only when its owner is
#      not berth already);
#   2. root is dropped for good with setpriv: uid/gid berth, no-new-privs,
#      and no capability at all, unless a credential file the scheduler reads
#      (any BERTH_*_CERT, _KEY, _CA, _CRL or _FILE setting: BERTH_TLS_KEY,
#      BERTH_GOSSIP_KEY_FILE, …) is not readable by berth: then
#      CAP_DAC_OVERRIDE alone is kept, so that it reads those files (and
#      re-reads them when they are rotated in place, scripts/pki.sh writing
#      them root-only) whoever owns them, and a line says which files made
#      it so. Make them readable by uid 10001 (chown 10001, or
#      group 10001 with mode 0640) and the scheduler keeps no capability.
# Started as another user (docker run --user 10001, a Kubernetes
# runAsUser): nothing to drop; the data directory must be writable by it.
set -eu

user=berth
data=${BERTH_DATA_DIR:-/var/lib/berth-scheduler}

log() { echo "scheduler-entrypoint: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	exec "$@"
fi

mkdir -p "$data"
if [ "$(stat -c %U "$data")" != "$user" ]; then
	log "$data is owned by $(stat -c %U:%G "$data"): giving it to $user (a volume from an image that ran as root)"
	chown -R "$user:$user" "$data"
fi

# The files named by BERTH_*_CERT, _KEY, _CA, _CRL and _FILE settings.
credentials() {
	env | sed -n 's/^BERTH_[A-Z0-9_]*\(_CERT\|_KEY\|_CA\|_CRL\|_FILE\)=//p'
}

caps=-all
unreadable=$(credentials | while IFS= read -r f; do
	[ -f "$f" ] || continue
	setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=-all --bounding-set=-all -- test -r "$f" ||
		echo "$f"
done)
if [ -n "$unreadable" ]; then
	log "not readable by $user (uid $(id -u "$user")): $(echo $unreadable); keeping CAP_DAC_OVERRIDE to read them (chown them to $(id -u "$user") to run without any capability)"
	caps=-all,+dac_override
fi
exec setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs \
	--inh-caps="$caps" --ambient-caps="$caps" --bounding-set="$caps" -- "$@"
