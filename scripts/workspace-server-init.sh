#!/usr/bin/env bash
# workspace-server-init.sh: everything one production workspace host needs,
# in one directory: its certificate and key (signed by the cluster CA, with
# the server id and its addresses in the SAN), the CA and its revocation
# list, the gossip key, the agent's configuration (agent.env, read by
# systemd's EnvironmentFile) and the systemd unit. Run it where the cluster
# CA lives; copy the bundle to the host. Safe to run twice: existing keys
# and certificates are kept, and the configuration is rewritten identically.
#
#   scripts/workspace-server-init.sh --id ws-eu-1 --address 203.0.113.10 \
#       [--hostname ws-eu-1.example.net] [--region eu-central] [--labels disk=nvme,zone=fsn1] \
#       [--join scheduler.example.net:7946] [--pki DIR] [--gossip-key FILE] [--out DIR] \
#       [--gpu-type TYPE --gpu-count N]
#
# Defaults: --pki ./pki (the CA is created there if missing), --gossip-key
# ./pki/gossip.key (created if missing), --out ./hosts/<id>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

id="" address="" hostname="" region="" labels="" join="" pki=./pki gossip="" out="" gpu_type="" gpu_count=""
die() { echo "workspace-server-init: $*" >&2; exit 2; }
usage_error() {
	echo "workspace-server-init: $*" >&2
	echo "usage: workspace-server-init.sh --id ID --address ADDRESS [--hostname NAME] [--region R] [--labels k=v,...] [--join HOST:PORT] [--pki DIR] [--gossip-key FILE] [--out DIR] [--gpu-type TYPE --gpu-count N]  (--help explains them)" >&2
	exit 2
}
while [[ $# -gt 0 ]]; do
	opt=$1
	case $opt in
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	--id | --address | --hostname | --region | --labels | --join | --pki | --gossip-key | --out | --gpu-type | --gpu-count)
		# Every option takes a value; the next option is not one.
		[[ $# -ge 2 && $2 != --* ]] || usage_error "$opt needs a value"
		val=$2
		shift 2
		;;
	*) usage_error "unknown option $opt" ;;
	esac
	case $opt in
	--id) id=$val ;;
	--address) address=$val ;;
	--hostname) hostname=$val ;;
	--region) region=$val ;;
	--labels) labels=$val ;;
	--join) join=$val ;;
	--pki) pki=$val ;;
	--gossip-key) gossip=$val ;;
	--out) out=$val ;;
	--gpu-type) gpu_type=$val ;;
	--gpu-count) gpu_count=$val ;;
	esac
done
[[ $id =~ ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ ]] || usage_error "--id: want 1-63 lower-case letters, digits, '.' or '-'"
[[ -n $address ]] || usage_error "--address is required (the IP or name the scheduler reaches the host at)"

# The address goes into the certificate as it is, and into host:port pairs
# with an IPv6 address in brackets ([2001:db8::1]:7443). [2001:db8::1] is
# accepted too. One colon is a host:port: the ports are fixed (7443, 7946).
address=${address#\[}
address=${address%\]}
case $address in
*:*:*)
	[[ $address =~ ^[0-9A-Fa-f:.]+$ ]] || die "--address $address: not an IPv6 address"
	hostport="[$address]"
	gossip_bind="[::]:7946" # memberlist binds IPv4 only on 0.0.0.0
	;;
*:*) die "--address $address: give the address without a port (the agent listens on 7443, gossip on 7946)" ;;
*)
	hostport=$address
	gossip_bind="0.0.0.0:7946"
	;;
esac
gossip=${gossip:-$pki/gossip.key}
out=${out:-./hosts/$id}

"$here/pki.sh" ca "$pki"
"$here/pki.sh" gossip-key "$gossip"
sans=("$address")
[[ -n $hostname ]] && sans+=("$hostname")
"$here/pki.sh" agent "$pki" "$id" "${sans[@]}"
"$here/pki.sh" crl-due "$pki"

mkdir -p "$out"
chmod 700 "$out"
install -m 644 "$pki/ca.crt" "$out/ca.crt"
install -m 644 "$pki/crl.pem" "$out/crl.pem"
install -m 644 "$pki/$id.crt" "$out/agent.crt"
install -m 600 "$pki/$id.key" "$out/agent.key"
install -m 600 "$gossip" "$out/gossip.key"
install -m 644 "$here/../deploy/systemd/berth-agent.service" "$out/berth-agent.service"
{
	echo "# berth agent configuration for $id (written by workspace-server-init.sh)"
	echo "BERTH_SERVER_ID=$id"
	echo "BERTH_REGION=$region"
	echo "BERTH_LABELS=$labels"
	echo "BERTH_LISTEN=:7443"
	echo "BERTH_ADVERTISE_ADDR=$hostport:7443"
	echo "BERTH_TLS_CERT=/etc/berth/agent.crt"
	echo "BERTH_TLS_KEY=/etc/berth/agent.key"
	echo "BERTH_TLS_CA=/etc/berth/ca.crt"
	echo "BERTH_TLS_CRL=/etc/berth/crl.pem"
	echo "BERTH_GOSSIP_KEY_FILE=/etc/berth/gossip.key"
	echo "BERTH_GOSSIP_BIND=$gossip_bind"
	echo "BERTH_GOSSIP_ADVERTISE=$hostport:7946"
	echo "BERTH_JOIN=$join"
	echo "BERTH_DATA_DIR=/var/lib/berth"
	echo "BERTH_DOCKER_HOST=unix:///var/run/docker.sock"
	[[ -n $gpu_type ]] && echo "BERTH_GPU_TYPE=$gpu_type"
	[[ -n $gpu_count ]] && echo "BERTH_GPU_COUNT=$gpu_count"
	true
} >"$out/agent.env.new"
mv "$out/agent.env.new" "$out/agent.env"
chmod 600 "$out/agent.env"

cat <<MSG
Bundle for $id in $out. On the host (Docker installed, Docker's TCP port closed):
  install -d -m 700 /etc/berth && install -m 600 $out/{agent.key,gossip.key,agent.env} /etc/berth/
  install -m 644 $out/{agent.crt,ca.crt,crl.pem} /etc/berth/ && install -m 755 bin/agent /usr/local/bin/berth-agent
  install -m 644 $out/berth-agent.service /etc/systemd/system/ && systemctl daemon-reload
  systemctl enable --now berth-agent
Open TCP 7443 (mTLS API) to the scheduler and between hosts (home directories move agent to agent),
and TCP+UDP 7946 (gossip) between hosts and scheduler.
Then register it: bin/scheduler servers add --id $id --address $address (or POST /admin/servers).
Its certificate lives ${PKI_DAYS:-30} days: renew it with scripts/pki.sh renew $pki $id (or renew-due) and copy
agent.crt/agent.key in place; copy $pki/crl.pem after every revocation. The agent re-reads them within a second.
MSG
