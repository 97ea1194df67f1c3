#!/usr/bin/env bash
# pki.sh: berth's certificate authority in a few openssl calls.
#
#   pki.sh ca        DIR                      cluster CA (DIR/ca.crt, DIR/ca.key), PKI_CA_DAYS (3650)
#   pki.sh agent     DIR SERVER_ID [SAN...]   agent cert (DIR/SERVER_ID.crt/.key): server, and client of peer agents
#   pki.sh scheduler DIR [NAME] [SAN...]      scheduler cert (DIR/NAME.crt/.key): a client of the agents;
#                                             with SANs also the server of its raft port (high availability)
#   pki.sh renew     DIR NAME                 re-issue NAME now: new key, same role and SANs
#   pki.sh renew-due DIR                      renew every leaf expiring within PKI_RENEW_DAYS (10)
#   pki.sh revoke    DIR NAME|SERIAL          put a certificate on the revocation list (DIR/crl.pem)
#   pki.sh unrevoke  DIR SERIAL               take it off again
#   pki.sh crl       DIR                      re-sign DIR/crl.pem (it is valid PKI_CRL_DAYS, 30)
#   pki.sh gossip-key        FILE             32-byte memberlist key, base64
#   pki.sh gossip-key-add    FILE             rotation step 1: append a new key (not yet used)
#   pki.sh gossip-key-use    FILE             rotation step 2: the new key becomes the primary
#   pki.sh gossip-key-remove FILE             rotation step 3: drop every key but the primary
#
# Leaf certificates live PKI_DAYS (default 30) days: renew them with `renew`
# or `renew-due` (from cron or a systemd timer) and copy them in place; the
# agent and the scheduler re-read certificate, key, CA and revocation list
# within a second of a change, without a restart. Files are replaced by
# rename, so a reader never sees half a file.
#
# SANs are host names or IP addresses; the server id is always the first DNS
# SAN, because the scheduler verifies an agent's certificate against the id of
# the server it believes it is calling. The role is bound by a URI SAN,
# spiffe://berth/agent or spiffe://berth/scheduler, and by the extended key
# usage (agents: serverAuth and clientAuth, since peer agents fetch home
# archives from each other; the scheduler: clientAuth). The subject's OU
# (berth-agent / berth-scheduler) is kept for people reading certificates,
# but berth no longer trusts it: a certificate with the role only in its OU
# is refused, and `agent` / `scheduler` re-issue such certificates.
#
# The gossip key file holds one key a line, the first the primary. Rotate
# with the three gossip-key-* steps, each applied to every member's file
# (copy the file everywhere) before the next; the members re-read it within a
# second. The gossip key commands rewrite FILE in place (same inode), so a
# single-file bind mount sees the change.
#
# Every command except renew, revoke and the rotation steps is idempotent:
# existing files are kept. Set PKI_FORCE=1 to re-issue.
set -euo pipefail
shopt -s extglob

DAYS=${PKI_DAYS:-30}
CA_DAYS=${PKI_CA_DAYS:-3650}
RENEW_DAYS=${PKI_RENEW_DAYS:-10}
CRL_DAYS=${PKI_CRL_DAYS:-30}
ROLE_URI=spiffe://berth/

die() { echo "pki.sh: $*" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
have() { [[ -z "${PKI_FORCE:-}" && -s "$1" ]]; }

ca() {
	local dir=$1
	mkdir -p "$dir"
	chmod 700 "$dir"
	have "$dir/ca.crt" && have "$dir/ca.key" && return 0
	openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
	chmod 600 "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$CA_DAYS" \
		-subj "/O=berth/CN=berth cluster CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$dir/ca.crt"
	echo "pki.sh: wrote $dir/ca.crt" >&2
}

need_ca() { [[ -s "$1/ca.crt" && -s "$1/ca.key" ]] || die "no CA in $1 (run: pki.sh ca $1)"; }

# issue DIR NAME OU EKU SAN...: a new key and certificate, replacing any
# existing pair (key first, then certificate, each by rename).
issue() {
	local dir=$1 name=$2 ou=$3 eku=$4
	shift 4
	need_ca "$dir"
	local sans="URI:$ROLE_URI${ou#berth-}," s
	for s in "$@"; do
		if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then sans+="IP:$s,"; else sans+="DNS:$s,"; fi
	done
	local tmp
	tmp=$(mktemp -d -p "$TMP")
	openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/key"
	openssl req -new -key "$tmp/key" -subj "/O=berth/OU=$ou/CN=$name" -out "$tmp/csr"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		echo "subjectAltName=${sans%,}"
	} >"$tmp/ext"
	openssl x509 -req -in "$tmp/csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
		-days "$DAYS" -sha256 -extfile "$tmp/ext" -out "$tmp/crt" 2>/dev/null
	install -m 600 "$tmp/key" "$dir/.$name.key.new"
	install -m 644 "$tmp/crt" "$dir/.$name.crt.new"
	mv -f "$dir/.$name.key.new" "$dir/$name.key"
	mv -f "$dir/.$name.crt.new" "$dir/$name.crt"
	echo "pki.sh: wrote $dir/$name.crt ($ou, serial $(serial "$dir/$name.crt"), $DAYS days)" >&2
}

serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

# current DIR NAME EKU: the pair exists, binds its role by URI SAN and has
# the extended key usage wanted; otherwise it is (re-)issued.
current() {
	local crt=$1/$2.crt
	have "$crt" && have "$1/$2.key" || return 1
	openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | grep -q "URI:$ROLE_URI" || return 1
	[[ $3 != *clientAuth* ]] || openssl x509 -in "$crt" -noout -ext extendedKeyUsage 2>/dev/null | grep -q 'Client Authentication'
}

agent() {
	local dir=$1 id=$2
	shift 2
	current "$dir" "$id" serverAuth,clientAuth && return 0
	issue "$dir" "$id" berth-agent serverAuth,clientAuth "$id" "$@"
}

# A scheduler with SANs is also a server: the raft port of the high
# availability setup, which other schedulers dial by the names in SANs.
scheduler() {
	local dir=$1 name=$2
	shift 2
	if (($#)); then
		current "$dir" "$name" serverAuth,clientAuth && has_sans "$dir/$name.crt" "$@" && return 0
		issue "$dir" "$name" berth-scheduler serverAuth,clientAuth "$@"
		return
	fi
	current "$dir" "$name" clientAuth && return 0
	issue "$dir" "$name" berth-scheduler clientAuth
}

# has_sans CRT SAN...: the certificate names every SAN and is a server's.
has_sans() {
	local crt=$1 s text
	shift
	text=$(openssl x509 -in "$crt" -noout -ext subjectAltName,extendedKeyUsage 2>/dev/null) || return 1
	grep -q 'Server Authentication' <<<"$text" || return 1
	for s in "$@"; do
		grep -qE "(DNS|IP Address):$s(,|$)" <<<"$text" || return 1
	done
}

# renew DIR NAME: re-issue with the role and SANs of the current certificate.
renew() {
	local dir=$1 name=$2 crt=$1/$2.crt
	[[ -s $crt ]] || die "no $crt to renew"
	local ou sans=() s
	ou=$(openssl x509 -in "$crt" -noout -subject -nameopt RFC2253 | sed -n 's/.*OU=\([^,]*\).*/\1/p')
	case $ou in
	berth-agent | berth-scheduler)
		for s in $(openssl x509 -in "$crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ' | tr ',' ' '); do
			case $s in
			DNS:*) sans+=("${s#DNS:}") ;;
			IPAddress:*) sans+=("${s#IPAddress:}") ;;
			esac
		done
		if [[ $ou == berth-agent ]]; then
			issue "$dir" "$name" berth-agent serverAuth,clientAuth "${sans[@]}"
		elif ((${#sans[@]})); then
			issue "$dir" "$name" berth-scheduler serverAuth,clientAuth "${sans[@]}"
		else
			issue "$dir" "$name" berth-scheduler clientAuth
		fi
		;;
	*) die "$crt: unknown role (OU) '$ou'" ;;
	esac
}

renew_due() {
	local dir=$1 crt name
	for crt in "$dir"/*.crt; do
		name=$(basename "$crt" .crt)
		[[ $name == ca ]] && continue
		if ! openssl x509 -in "$crt" -noout -checkend $((RENEW_DAYS * 86400)) >/dev/null ||
			! openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | grep -q "URI:$ROLE_URI"; then
			renew "$dir" "$name"
		fi
	done
}

# crl DIR: sign DIR/crl.pem from DIR/revoked.txt (lines: SERIAL DATE NAME).
crl() {
	local dir=$1
	need_ca "$dir"
	touch "$dir/revoked.txt"
	[[ -s $dir/crlnumber ]] || echo 01 >"$dir/crlnumber"
	local tmp serial when name
	tmp=$(mktemp -d -p "$TMP")
	: >"$tmp/index.txt"
	while read -r serial when name; do
		[[ -n $serial ]] || continue
		# openssl ca's database: status, expiry, revocation date, serial, file, subject.
		printf 'R\t491231235959Z\t%s\t%s\tunknown\t/CN=%s\n' "$when" "$serial" "$name" >>"$tmp/index.txt"
	done <"$dir/revoked.txt"
	cat >"$tmp/ca.cnf" <<EOF
[ca]
default_ca = berth
[berth]
database = $tmp/index.txt
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = $CRL_DAYS
EOF
	openssl ca -config "$tmp/ca.cnf" -gencrl -keyfile "$dir/ca.key" -cert "$dir/ca.crt" -out "$tmp/crl.pem" 2>/dev/null ||
		die "openssl ca -gencrl failed"
	install -m 644 "$tmp/crl.pem" "$dir/.crl.pem.new"
	mv -f "$dir/.crl.pem.new" "$dir/crl.pem"
	echo "pki.sh: wrote $dir/crl.pem ($(grep -c . "$dir/revoked.txt" || true) revoked, valid $CRL_DAYS days)" >&2
}

# crl_due DIR: sign the list when it is missing or expires within a third of its life.
crl_due() {
	[[ -s $1/crl.pem ]] && openssl crl -in "$1/crl.pem" -noout -nextupdate >/dev/null 2>&1 &&
		(($(date -d "$(openssl crl -in "$1/crl.pem" -noout -nextupdate | cut -d= -f2)" +%s) - $(date +%s) > CRL_DAYS * 86400 / 3)) &&
		return 0
	crl "$1"
}

revoke() {
	local dir=$1 what=$2 serial name
	if [[ -s $dir/$what.crt ]]; then
		serial=$(serial "$dir/$what.crt") name=$what
	else
		serial=$(hexnorm "$what") name=serial-$what
		[[ $serial =~ ^[0-9A-F]+$ ]] || die "$what: neither a certificate name in $dir nor a hex serial"
		((${#serial} % 2 == 0)) || serial=0$serial
	fi
	touch "$dir/revoked.txt"
	local line
	while read -r line; do
		[[ $(hexnorm "${line%% *}") != "$(hexnorm "$serial")" ]] || { echo "pki.sh: $serial already revoked" >&2; return 0; }
	done <"$dir/revoked.txt"
	echo "$serial $(date -u +%y%m%d%H%M%SZ) $name" >>"$dir/revoked.txt"
	crl "$dir"
	echo "pki.sh: revoked $name (serial $serial)" >&2
	[[ ! -s $dir/$name.crt ]] || echo "pki.sh: issue $name a new certificate with: pki.sh renew $dir $name" >&2
}

# hexnorm SERIAL: upper case, no leading zeros (openssl pads, Go does not).
hexnorm() { local s=${1^^}; s=${s##+(0)}; echo "${s:-0}"; }

unrevoke() {
	local dir=$1 want line
	want=$(hexnorm "$2")
	[[ -f $dir/revoked.txt ]] || die "nothing revoked in $dir"
	while read -r line; do
		[[ $(hexnorm "${line%% *}") == "$want" ]] || echo "$line"
	done <"$dir/revoked.txt" >"$dir/.revoked.txt.new"
	mv -f "$dir/.revoked.txt.new" "$dir/revoked.txt"
	crl "$dir"
}

# The gossip key file: one base64 key a line, the primary first.
new_key() { head -c 32 /dev/urandom | base64; }

# rewrite FILE CONTENT: in place (same inode, same mode), for bind mounts.
rewrite() { printf '%s\n' "$2" >"$TMP/rewrite" && cat "$TMP/rewrite" >"$1"; }

keys() { grep -v '^\s*\(#\|$\)' "$1" || true; }

gossip_key() {
	local file=$1
	have "$file" && return 0
	mkdir -p "$(dirname "$file")"
	(umask 077 && new_key >"$file")
	echo "pki.sh: wrote $file" >&2
}

gossip_key_add() {
	local file=$1 n
	n=$(keys "$file" | grep -c .) || die "$file: no key"
	((n == 1)) || die "$file holds $n keys: finish the rotation in progress (gossip-key-use, gossip-key-remove) first"
	rewrite "$file" "$(keys "$file")"$'\n'"$(new_key)"
	echo "pki.sh: $file: new key added (step 1/3); copy the file to every member, then run gossip-key-use" >&2
}

gossip_key_use() {
	local file=$1 n
	n=$(keys "$file" | grep -c .) || true
	((n >= 2)) || die "$file holds $n key(s): run gossip-key-add first"
	rewrite "$file" "$(keys "$file" | tail -n 1)"$'\n'"$(keys "$file" | head -n -1)"
	echo "pki.sh: $file: newest key is the primary (step 2/3); copy the file to every member, then run gossip-key-remove" >&2
}

gossip_key_remove() {
	local file=$1 n
	n=$(keys "$file" | grep -c .) || true
	((n >= 2)) || die "$file holds $n key(s): nothing to remove"
	rewrite "$file" "$(keys "$file" | head -n 1)"
	echo "pki.sh: $file: old keys removed (step 3/3); copy the file to every member" >&2
}

cmd=${1:-}
shift || true
case $cmd in
ca) ca "${1:?DIR}" ;;
agent)
	dir=${1:?DIR} id=${2:?SERVER_ID}
	shift 2
	agent "$dir" "$id" "$@"
	;;
scheduler) scheduler "${1:?DIR}" "${2:-scheduler}" "${@:3}" ;;
renew) renew "${1:?DIR}" "${2:?NAME}" ;;
renew-due) renew_due "${1:?DIR}" ;;
revoke) revoke "${1:?DIR}" "${2:?NAME or SERIAL}" ;;
unrevoke) unrevoke "${1:?DIR}" "${2:?SERIAL}" ;;
crl) crl "${1:?DIR}" ;;
crl-due) crl_due "${1:?DIR}" ;;
gossip-key) gossip_key "${1:?FILE}" ;;
gossip-key-add) gossip_key_add "${1:?FILE}" ;;
gossip-key-use) gossip_key_use "${1:?FILE}" ;;
gossip-key-remove) gossip_key_remove "${1:?FILE}" ;;
*) die "usage: pki.sh ca|agent|scheduler|renew|renew-due|revoke|unrevoke|crl|gossip-key|gossip-key-add|gossip-key-use|gossip-key-remove ..." ;;
esac
