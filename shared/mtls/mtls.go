package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrWrongRole means a peer's certificate does not carry the role required.
var ErrWrongRole = errors.New("certificate does not carry the required role")

// Files names the PEM files of one end of the link.
type Files struct {
	Cert string
	Key  string
	CA   string
}

func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load key pair %s: %w", f.Cert, err)
	}
	pool, err := LoadCA(f.CA)
	return cert, pool, err
}

// LoadCA reads a PEM bundle into a pool.
func LoadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA %s: no PEM certificates", path)
	}
	return pool, nil
}

// ServerConfig is the agent's: client certificates are required, verified
// against the cluster CA, and must carry one of roles (the agent accepts the
// scheduler, and peer agents for home transfers; its routes then check the
// role each needs).
func ServerConfig(f Files, roles ...string) (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{cert},
		ClientCAs:             pool,
		ClientAuth:            tls.RequireAndVerifyClientCert,
		VerifyPeerCertificate: requireRole(roles...),
	}, nil
}

// ClientConfig is the scheduler's. The returned config verifies the agent
// against the cluster CA and role, and must be given the server id it means to
// call with ForServer before use.
func ClientConfig(f Files, role string) (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{cert},
		RootCAs:               pool,
		VerifyPeerCertificate: requireRole(role),
	}, nil
}

// ForServer returns a copy of a client config that accepts only a
// certificate naming serverID, whatever address is dialled.
func ForServer(base *tls.Config, serverID string) *tls.Config {
	c := base.Clone()
	c.ServerName = serverID
	return c
}

// Role returns the berth role (OrganizationalUnit) of a certificate.
func Role(cert *x509.Certificate) []string { return cert.Subject.OrganizationalUnit }

// requireRole runs after the standard chain verification succeeded: the
// leaf must carry one of roles.
func requireRole(roles ...string) func([][]byte, [][]*x509.Certificate) error {
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 {
			return fmt.Errorf("%w: no verified chain", ErrWrongRole)
		}
		leaf := chains[0][0]
		if !slices.ContainsFunc(Role(leaf), func(r string) bool { return slices.Contains(roles, r) }) {
			return fmt.Errorf("%w: %q has %v, want one of %v", ErrWrongRole, leaf.Subject.CommonName, Role(leaf), roles)
		}
		return nil
	}
}
