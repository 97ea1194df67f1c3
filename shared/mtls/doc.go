// Package mtls builds the TLS configurations of the scheduler↔agent link.
// Both ends present certificates signed by the cluster CA: the agent serves
// only TLS 1.3 and accepts only clients whose certificate is bound to the
// scheduler role (URI SAN spiffe://berth/scheduler, clientAuth); the
// scheduler accepts only agents bound to the agent role (spiffe://berth/agent,
// serverAuth) whose certificate names the server id it meant to call.
//
// Key material is re-read while running: certificate and key (KeyPairFile),
// the CA bundle (CAFile) and the revocation list (CRLFile) are checked at
// most once per DefaultCheckInterval and replaced when their contents
// change; a file that does not load keeps the previous one. Peers are
// verified by Verifier on every handshake and, through
// Identity.CheckPeer, on every request of an open connection.
package mtls
