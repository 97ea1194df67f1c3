// Package mtls builds the TLS configurations of the scheduler↔agent link.
// Both ends present certificates signed by the cluster CA: the agent serves
// only TLS 1.3 and accepts only clients whose certificate carries the
// scheduler role; the scheduler accepts only agents whose certificate carries
// the agent role and names the server id it meant to call.
package mtls
