package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"weak"
)

// The chain cache is keyed by the leaf's DER, not by its parsed
// certificate: a peer met again over a new connection (a new parse of the
// same certificate) hits the entry, and the cache holds on to no leaf, so
// a scheduler that talks to 10,000 agents now and then does not keep
// 10,000 parsed certificates alive.
func TestChainCacheHoldsNoLeaf(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("spiffe://berth/agent")
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ws-1"},
		DNSNames: []string{"ws-1"}, URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile, err := LoadCAFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{CA: caFile}

	for i := range 2 { // two connections: two parses of the same certificate
		leaf, _ := x509.ParseCertificate(leafDER)
		chain, err := v.chain([]*x509.Certificate{leaf}, x509.ExtKeyUsageServerAuth, "ws-1")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if len(chain) != 2 || chain[0] != leaf || !chain[1].Equal(ca) {
			t.Errorf("connection %d: chain %v, want this leaf then the CA", i, chain)
		}
	}
	if len(v.chains) != 1 {
		t.Fatalf("%d cache entries, want 1 (the same leaf)", len(v.chains))
	}
	for _, c := range v.chains {
		for _, cert := range c.above {
			if string(cert.Raw) == string(leafDER) {
				t.Error("the cache holds the leaf")
			}
		}
	}
	// Nothing the cache holds keeps a parsed leaf alive.
	leaf, _ := x509.ParseCertificate(leafDER)
	if _, err := v.chain([]*x509.Certificate{leaf}, x509.ExtKeyUsageServerAuth, "other"); err == nil {
		t.Fatal("a name the certificate does not carry was accepted")
	}
	if _, err := v.chain([]*x509.Certificate{leaf}, x509.ExtKeyUsageServerAuth, ""); err != nil {
		t.Fatal(err)
	}
	wp := weak.Make(leaf) // leaf is not used past this line: only the cache could keep it
	runtime.GC()
	runtime.GC()
	if wp.Value() != nil {
		t.Error("a verified leaf is still alive after the verification: the cache keeps it")
	}
	runtime.KeepAlive(v) // the cache, alive through the check
}
