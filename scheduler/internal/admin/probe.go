package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/shared/wire"
)

// probeTimeout bounds the check of a new server's agent.
const probeTimeout = 5 * time.Second

// checkAgent makes sure the agent at addr is the one of server id: it
// answers over mTLS with the scheduler's identity, its certificate names id
// (the agent client verifies that), and it says it is id. Any failure is an
// ErrInvalid error saying exactly what is wrong. On success it returns the
// agent's measured capacity when it could read it (zero otherwise).
func (a *API) checkAgent(ctx context.Context, id, addr string) (wire.Capacity, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	client := a.d.Agents.Probe(id, addr) // not yet registered: maybe never
	h, err := client.Health(ctx)
	switch {
	case err == nil && h.ServerID != id:
		return wire.Capacity{}, failf(ErrInvalid,
			"the agent at %s says it is server %q, not %q: its BERTH_SERVER_ID and the id given here must match", addr, h.ServerID, id)
	case err == nil:
		capa, _ := client.Capacity(ctx) // only to fill in the architecture; the server is fine without it
		return capa, nil
	case !errors.Is(err, agentclient.ErrUnreachable):
		return wire.Capacity{}, failf(ErrInvalid, "the agent at %s answered its health check with an error: %v", addr, err)
	}
	// The mTLS call failed: find out at which step, to say what to fix.
	leaf, stage, perr := peekCertificate(ctx, addr)
	switch {
	case stage == stageDial:
		return wire.Capacity{}, failf(ErrInvalid, "agent address %s is unreachable from the scheduler: %v", addr, perr)
	case stage == stageHandshake:
		return wire.Capacity{}, failf(ErrInvalid, "the service at %s is not a berth agent (TLS handshake failed): %v", addr, perr)
	case leaf.VerifyHostname(id) != nil:
		return wire.Capacity{}, failf(ErrInvalid,
			"the certificate of the agent at %s is for %s, not for server id %q: give the server the id its certificate names, or issue the agent a certificate for %q (scripts/pki.sh agent DIR %s HOST...)",
			addr, certNames(leaf), id, id, id)
	}
	return wire.Capacity{}, failf(ErrInvalid, "mTLS check of the agent at %s failed (is its certificate signed by this cluster's CA?): %v", addr, err)
}

// The steps of peekCertificate.
type peekStage int

const (
	stageDial      peekStage = iota // no TCP connection
	stageHandshake                  // TCP, but no TLS server certificate
	stageDone                       // the certificate was read
)

// peekCertificate reads the certificate an agent presents, without
// verifying it and without sending a client certificate. It is used only to
// explain why a verified call failed, or to learn which server id an address
// claims to be before the verified call; nothing is sent over the
// connection.
func peekCertificate(ctx context.Context, addr string) (*x509.Certificate, peekStage, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, stageDial, err
	}
	defer conn.Close()
	// Verification is skipped on purpose: the certificate is only read.
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec
	if err := tc.HandshakeContext(ctx); err != nil {
		// A TLS 1.2 server may refuse before the client sees its
		// certificate; TLS 1.3 (the agent's) hands it over first.
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			return certs[0], stageDone, nil
		}
		return nil, stageHandshake, err
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, stageHandshake, errors.New("no server certificate")
	}
	return certs[0], stageDone, nil
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return fmt.Sprintf("%q (no subject alternative names)", c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}

// certServerID is the server id an agent certificate names: its first DNS
// name (scripts/pki.sh puts the id there), else its common name.
func certServerID(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}
