#!/usr/bin/env bash
# dev-certs.sh: development PKI and gossip key for the local cluster, in .dev/.
# Local runs use mTLS and encrypted gossip exactly like production; only the
# CA differs. Safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."
PKI=.dev/pki
scripts/pki.sh ca "$PKI"
for id in ws-local-1 ws-local-2; do
	scripts/pki.sh agent "$PKI" "$id" localhost 127.0.0.1
done
scripts/pki.sh scheduler "$PKI" scheduler
scripts/pki.sh gossip-key .dev/gossip.key
