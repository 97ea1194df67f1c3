#!/usr/bin/env bash
# dev-certs.sh: development PKI and gossip key for the local cluster, in .dev/.
# Local runs use mTLS and encrypted gossip exactly like production; only the
# CA differs. Safe to run any number of times: it (re-)issues what is missing,
# what binds its role only by OU (issued before role URI SANs) and what
# expires within PKI_RENEW_DAYS (10) of its 30 days, and keeps a signed
# revocation list (.dev/pki/crl.pem, BERTH_TLS_CRL) current. The running
# cluster re-reads replaced files within a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PKI=.dev/pki
scripts/pki.sh ca "$PKI"
for id in ws-local-1 ws-local-2; do
	scripts/pki.sh agent "$PKI" "$id" localhost 127.0.0.1
done
scripts/pki.sh scheduler "$PKI" scheduler
# The three schedulers of `make run-ha` (docker-compose.ha.yml): each a server
# of its raft port too, named as the others dial it.
for id in scheduler-1 scheduler-2 scheduler-3; do
	scripts/pki.sh scheduler "$PKI" "$id" "$id"
done
scripts/pki.sh renew-due "$PKI"
scripts/pki.sh crl-due "$PKI"
scripts/pki.sh gossip-key .dev/gossip.key
# The key sealing git credentials in the registry, shared by the schedulers
# of `make run-ha` (a replicated registry holds the same ciphertext on each).
scripts/pki.sh gossip-key .dev/secrets.key
