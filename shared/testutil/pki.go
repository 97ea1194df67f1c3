package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/shared/mtls"
)

// PKI is a throwaway certificate authority for tests.
type PKI struct {
	Dir    string
	CAFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	t      testing.TB
}

// NewPKI creates a CA in a temp dir.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"berth"}, CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &PKI{Dir: dir, ca: ca, caKey: key, t: t, CAFile: filepath.Join(dir, "ca.crt")}
	writePEM(t, p.CAFile, "CERTIFICATE", der)
	return p
}

// WriteCAKey writes the CA's private key (ca.key, mode 0600) for a process
// that signs certificates of its own with this CA (tools/fakefleet), and
// returns its path.
func (p *PKI) WriteCAKey() string {
	p.t.Helper()
	der, err := x509.MarshalECPrivateKey(p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(p.Dir, "ca.key")
	writePEM(p.t, path, "EC PRIVATE KEY", der)
	return path
}

// Issue writes name.crt and name.key signed by the CA, with the given role
// (its URI SAN, mtls.RoleURI, and the OU) and SANs (host names or IPs), and
// returns their paths.
func (p *PKI) Issue(name, role string, server bool, sans ...string) (certFile, keyFile string) {
	p.t.Helper()
	return p.issue(name, role, true, server, sans...)
}

// IssueOUOnly is Issue as berth issued certificates before role URI SANs:
// the role only in the OU.
func (p *PKI) IssueOUOnly(name, role string, server bool, sans ...string) (certFile, keyFile string) {
	p.t.Helper()
	return p.issue(name, role, false, server, sans...)
}

func (p *PKI) issue(name, role string, roleURI, server bool, sans ...string) (certFile, keyFile string) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"berth"}, OrganizationalUnit: []string{role}, CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if roleURI {
		tmpl.URIs = []*url.URL{mtls.RoleURL(role)}
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	certFile = filepath.Join(p.Dir, name+".crt")
	keyFile = filepath.Join(p.Dir, name+".key")
	writePEM(p.t, certFile, "CERTIFICATE", der)
	writePEM(p.t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

// WriteCRL writes to path a revocation list of the CA that revokes the
// certificates in the PEM files certFiles (none: an empty list), replacing
// the file by rename as an operator's tool would.
func (p *PKI) WriteCRL(path string, certFiles ...string) {
	p.t.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(time.Now().UnixNano()),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(24 * time.Hour),
	}
	for _, f := range certFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			p.t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			p.t.Fatal(err)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.ca, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	writePEM(p.t, path+".tmp", "X509 CRL", der)
	if err := os.Rename(path+".tmp", path); err != nil {
		p.t.Fatal(err)
	}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FreePort returns a port on 127.0.0.1 that was free for TCP and UDP a
// moment ago, for a process the test starts to bind. It is drawn below the
// kernel's ephemeral range: a port the kernel handed out for ":0" is also
// what it hands to the next outgoing connection of any test, which then
// takes it before the process binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	low := 32768
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(raw)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const floor = 10000
	for range 200 {
		if low-floor < 1000 {
			break
		}
		port := floor + mathrand.IntN(low-floor)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Eventually polls cond every 20ms until it returns true or the deadline
// passes, then fails the test with msg.
func Eventually(t testing.TB, within time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %s", within, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
