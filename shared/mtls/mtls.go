package mtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrWrongRole means a peer's certificate does not carry the role required.
var ErrWrongRole = errors.New("certificate does not carry the required role")

// RoleURIPrefix starts the URI SAN that binds a certificate to its berth
// role: spiffe://berth/agent for wire.RoleAgent ("berth-agent"),
// spiffe://berth/scheduler for wire.RoleScheduler.
const RoleURIPrefix = "spiffe://berth/"

// RoleURI is the URI SAN of role (a wire.Role* value).
func RoleURI(role string) string { return RoleURIPrefix + strings.TrimPrefix(role, "berth-") }

// Role returns the berth roles a certificate is bound to: those named by
// its RoleURI SANs. The subject's OU is not a role any more (certificates
// issued before URI SANs carry only the OU and are refused; see
// scripts/pki.sh renew).
func Role(cert *x509.Certificate) []string {
	var roles []string
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, RoleURIPrefix) {
			roles = append(roles, "berth-"+strings.TrimPrefix(s, RoleURIPrefix))
		}
	}
	return roles
}

// RoleURL is RoleURI parsed, for certificate templates.
func RoleURL(role string) *url.URL {
	u, err := url.Parse(RoleURI(role))
	if err != nil {
		panic(err) // RoleURI builds a valid URL from any wire role
	}
	return u
}

// Files names the PEM files of one end of the link. CRL is optional: a
// revocation list signed by the CA, checked on every handshake (and by
// CheckPeer on every request). All of them are re-read when they change.
type Files struct {
	Cert string
	Key  string
	CA   string
	CRL  string
	Log  hclog.Logger // reloads and failed reloads; nil = not logged
}

// Identity is one end's certificate and its verification of peers, all
// reloaded from their files when they change.
type Identity struct {
	Cert     *KeyPairFile
	Verifier *Verifier
}

// Load reads the files named by f.
func Load(f Files) (*Identity, error) {
	cert, err := LoadKeyPairFile(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	ca, err := LoadCAFile(f.CA)
	if err != nil {
		return nil, err
	}
	v := &Verifier{CA: ca}
	if f.CRL != "" {
		if v.CRL, err = LoadCRLFile(f.CRL, ca); err != nil {
			return nil, err
		}
	}
	if f.Log != nil {
		cert.SetLogger(f.Log)
		ca.SetLogger(f.Log)
		if v.CRL != nil {
			v.CRL.SetLogger(f.Log)
		}
	}
	return &Identity{Cert: cert, Verifier: v}, nil
}

// SetCheckInterval sets how often, at most, every file of the identity is
// re-read (DefaultCheckInterval; 0 = on every use, for tests).
func (id *Identity) SetCheckInterval(d time.Duration) {
	id.Cert.SetCheckInterval(d)
	id.Verifier.CA.SetCheckInterval(d)
	if id.Verifier.CRL != nil {
		id.Verifier.CRL.SetCheckInterval(d)
	}
}

// ServerConfig is the agent's: client certificates are required, verified
// against the current CA bundle and revocation list, and must carry one of
// roles (the agent accepts the scheduler, and peer agents for home
// transfers; its routes then check the role each needs, and CheckPeer
// re-verifies on every request).
func (id *Identity) ServerConfig(roles ...string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: id.Cert.GetCertificate,
		// Verified by VerifyConnection against the reloaded pool: ClientCAs
		// would be fixed at creation.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return id.Verifier.Verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, "", roles...)
		},
	}
}

// ClientConfig is a client's (the scheduler's, or an agent calling a
// peer). It verifies the server against the current CA bundle, revocation
// list and role, and must be given the server id it means to call with
// ForServer before use.
func (id *Identity) ClientConfig(role string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: id.Cert.GetClientCertificate,
		// Verified by VerifyConnection against the reloaded pool: RootCAs
		// would be fixed at creation.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.ServerName == "" {
				return errors.New("tls: no server name to verify (mtls.ForServer was not called)")
			}
			return id.Verifier.Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, cs.ServerName, role)
		},
	}
}

// ServerConfig loads f and returns Identity.ServerConfig.
func ServerConfig(f Files, roles ...string) (*tls.Config, error) {
	id, err := Load(f)
	if err != nil {
		return nil, err
	}
	return id.ServerConfig(roles...), nil
}

// ClientConfig loads f and returns Identity.ClientConfig.
func ClientConfig(f Files, role string) (*tls.Config, error) {
	id, err := Load(f)
	if err != nil {
		return nil, err
	}
	return id.ClientConfig(role), nil
}

// ForServer returns a copy of a client config that accepts only a
// certificate naming serverID, whatever address is dialled.
func ForServer(base *tls.Config, serverID string) *tls.Config {
	c := base.Clone()
	c.ServerName = serverID
	if verify := base.VerifyConnection; verify != nil {
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			cs.ServerName = serverID // also when serverID is an IP (sent without SNI)
			return verify(cs)
		}
	}
	return c
}

// Verifier checks a peer's certificate chain against the current CA bundle
// and revocation list. Its files are re-read when they change, so a CA
// rotation or a revocation applies to the next handshake (and, through
// CheckPeer, to the next request of an open connection).
type Verifier struct {
	CA  *CAFile
	CRL *CRLFile // nil = no revocation list

	mu     sync.Mutex
	chains map[chainKey]verified // chain verifications of the peers' certificates
}

// chainKey is one verification: the leaf (the SHA-256 of its DER: the
// cache holds no parsed leaf, so a peer seen now and then over short
// connections costs an entry of ~100 bytes, not its certificate), the
// usage and the name asked for.
type chainKey struct {
	leaf    [sha256.Size]byte
	usage   x509.ExtKeyUsage
	dnsName string
}

// verified is a chain verification, valid while the CA bundle is the one
// it was made against and until the first certificate of the chain expires.
// above is the chain without its leaf (intermediates and root).
type verified struct {
	ca       *caSet
	above    []*x509.Certificate
	notAfter time.Time
}

// maxCachedChains bounds the cache; past it, it starts over. A scheduler
// verifies each agent's own leaf: the bound is well above the 10,000
// agents berth is measured with (an entry is about 100 bytes), since a
// cache that starts over verifies every chain again.
const maxCachedChains = 1 << 16

// Verify checks certs (leaf first, as presented) for usage, dnsName ("" =
// any) and one of roles.
func (v *Verifier) Verify(certs []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string, roles ...string) error {
	if len(certs) == 0 {
		return errors.New("tls: peer presented no certificate")
	}
	leaf := certs[0]
	chain, err := v.chain(certs, usage, dnsName)
	if err != nil {
		return fmt.Errorf("tls: verify %q: %w", leaf.Subject.CommonName, err)
	}
	if v.CRL != nil {
		for _, c := range chain[:len(chain)-1] { // the root itself is trusted by its presence
			if err := v.CRL.Check(c); err != nil {
				return err
			}
		}
	}
	return requireRole(leaf, roles)
}

// chain verifies certs against the current CA bundle, or returns the
// verification already made for the same leaf (every request of a
// connection, every connection of a peer) while the bundle is unchanged and
// the chain unexpired: the signature checks then cost once per peer, the
// revocation check stays per request.
func (v *Verifier) chain(certs []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string) ([]*x509.Certificate, error) {
	v.CA.check()
	ca := v.CA.cur.Load()
	key := chainKey{sha256.Sum256(certs[0].Raw), usage, dnsName}
	now := time.Now()
	v.mu.Lock()
	c, ok := v.chains[key]
	v.mu.Unlock()
	if ok && c.ca == ca && now.Before(c.notAfter) {
		return append([]*x509.Certificate{certs[0]}, c.above...), nil
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots: ca.pool, Intermediates: inter, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: now,
	})
	if err != nil {
		return nil, err
	}
	// A copy: a slice of the chain would keep its whole array, leaf and all.
	c = verified{ca: ca, above: slices.Clone(chains[0][1:]), notAfter: chains[0][0].NotAfter}
	for _, cert := range chains[0] {
		if cert.NotAfter.Before(c.notAfter) {
			c.notAfter = cert.NotAfter
		}
	}
	v.mu.Lock()
	if v.chains == nil || len(v.chains) >= maxCachedChains {
		v.chains = map[chainKey]verified{}
	}
	v.chains[key] = c
	v.mu.Unlock()
	return chains[0], nil
}

// CheckPeer re-verifies a connection's client certificates on each request
// (the agent's middleware calls it with r.TLS.PeerCertificates): a
// revocation or a CA removal reaches open keep-alive and HTTP/2
// connections, not only new handshakes.
func (id *Identity) CheckPeer(certs []*x509.Certificate, roles ...string) error {
	return id.Verifier.Verify(certs, x509.ExtKeyUsageClientAuth, "", roles...)
}

// requireRole runs after the chain verification succeeded: the leaf must be
// bound to one of roles by a RoleURI SAN.
func requireRole(leaf *x509.Certificate, roles []string) error {
	have := Role(leaf)
	if slices.ContainsFunc(have, func(r string) bool { return slices.Contains(roles, r) }) {
		return nil
	}
	if len(have) == 0 && len(leaf.Subject.OrganizationalUnit) > 0 {
		return fmt.Errorf("%w: %q carries its role only in the OU %v (issued before role URI SANs): re-issue it with scripts/pki.sh renew",
			ErrWrongRole, leaf.Subject.CommonName, leaf.Subject.OrganizationalUnit)
	}
	return fmt.Errorf("%w: %q has %v, want one of %v", ErrWrongRole, leaf.Subject.CommonName, have, roles)
}

// LoadCA reads a PEM bundle into a pool, once.
func LoadCA(path string) (*x509.CertPool, error) {
	ca, err := LoadCAFile(path)
	if err != nil {
		return nil, err
	}
	return ca.Pool(), nil
}
