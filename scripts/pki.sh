#!/usr/bin/env bash
# pki.sh: berth's certificate authority in a few openssl calls.
#
#   pki.sh ca        DIR                      cluster CA (DIR/ca.crt, DIR/ca.key)
#   pki.sh agent     DIR SERVER_ID [SAN...]   agent cert (DIR/SERVER_ID.crt/.key): server, and client of peer agents
#   pki.sh scheduler DIR [NAME]               scheduler client cert (DIR/NAME.crt/.key)
#   pki.sh gossip-key FILE                    32-byte memberlist key, base64
#
# SANs are host names or IP addresses; the server id is always the first DNS
# SAN, because the scheduler verifies an agent's certificate against the id of
# the server it believes it is calling. The role sits in the subject's OU
# (berth-agent / berth-scheduler); the agent refuses clients without the
# scheduler role, except on the home archive route, which peer agents call
# with their own certificate (hence clientAuth on agent certificates; an
# agent certificate issued before that is re-issued). Every command is idempotent: existing files are kept, so
# running it twice changes nothing. Set PKI_FORCE=1 to re-issue.
set -euo pipefail

DAYS=${PKI_DAYS:-825}

die() { echo "pki.sh: $*" >&2; exit 1; }
have() { [[ -z "${PKI_FORCE:-}" && -s "$1" ]]; }

ca() {
	local dir=$1
	mkdir -p "$dir"
	chmod 700 "$dir"
	have "$dir/ca.crt" && have "$dir/ca.key" && return 0
	openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
	chmod 600 "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 \
		-subj "/O=berth/CN=berth cluster CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$dir/ca.crt"
	echo "pki.sh: wrote $dir/ca.crt" >&2
}

# issue DIR NAME OU EKU SAN...
issue() {
	local dir=$1 name=$2 ou=$3 eku=$4
	shift 4
	[[ -s "$dir/ca.crt" && -s "$dir/ca.key" ]] || die "no CA in $dir (run: pki.sh ca $dir)"
	have "$dir/$name.crt" && have "$dir/$name.key" && return 0
	local sans="" s
	for s in "$@"; do
		if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then sans+="IP:$s,"; else sans+="DNS:$s,"; fi
	done
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/key"
	openssl req -new -key "$tmp/key" -subj "/O=berth/OU=$ou/CN=$name" -out "$tmp/csr"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[[ -n $sans ]] && echo "subjectAltName=${sans%,}"
	} >"$tmp/ext"
	openssl x509 -req -in "$tmp/csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
		-days "$DAYS" -sha256 -extfile "$tmp/ext" -out "$tmp/crt" 2>/dev/null
	install -m 600 "$tmp/key" "$dir/$name.key"
	install -m 644 "$tmp/crt" "$dir/$name.crt"
	echo "pki.sh: wrote $dir/$name.crt ($ou)" >&2
}

gossip_key() {
	local file=$1
	have "$file" && return 0
	mkdir -p "$(dirname "$file")"
	(umask 077 && head -c 32 /dev/urandom | base64 >"$file")
	echo "pki.sh: wrote $file" >&2
}

cmd=${1:-}
shift || true
case $cmd in
ca) ca "${1:?DIR}" ;;
agent)
	dir=${1:?DIR} id=${2:?SERVER_ID}
	shift 2
	# Certificates issued before agents became clients of each other lack
	# clientAuth: re-issue those.
	if [[ -s "$dir/$id.crt" ]] && ! openssl x509 -in "$dir/$id.crt" -noout -ext extendedKeyUsage 2>/dev/null | grep -q 'Client Authentication'; then
		rm -f "$dir/$id.crt" "$dir/$id.key"
	fi
	issue "$dir" "$id" berth-agent serverAuth,clientAuth "$id" "$@"
	;;
scheduler) issue "${1:?DIR}" "${2:-scheduler}" berth-scheduler clientAuth ;;
gossip-key) gossip_key "${1:?FILE}" ;;
*) die "usage: pki.sh ca|agent|scheduler|gossip-key ..." ;;
esac
