package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultCheckInterval is how often, at most, the files behind a KeyPairFile,
// CAFile or CRLFile are re-read: on the first handshake (or request check)
// after it has passed. Reading compares the files' contents, so a file
// replaced by rename (a new inode), rewritten in place or touched without
// change are all handled alike.
const DefaultCheckInterval = time.Second

// watch re-reads a set of files at most once per interval and reports when
// their contents changed. A failed load keeps the previous value: the caller
// logs it, and the same broken contents are not reported again.
type watch struct {
	paths []string
	every atomic.Int64 // time.Duration

	mu      sync.Mutex
	sum     [sha256.Size]byte
	checked time.Time
}

func newWatch(paths ...string) *watch {
	w := &watch{paths: paths}
	w.every.Store(int64(DefaultCheckInterval))
	return w
}

// read returns the files' contents and whether they differ from the last
// read. Without force it skips the read when the interval has not passed.
func (w *watch) read(force bool) (contents [][]byte, changed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(w.checked) < time.Duration(w.every.Load()) {
		return nil, false, nil
	}
	w.checked = now
	h := sha256.New()
	for _, p := range w.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, false, err
		}
		contents = append(contents, b)
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum == w.sum && !force {
		return nil, false, nil
	}
	w.sum = sum
	return contents, true, nil
}

// reloader is what KeyPairFile, CAFile and CRLFile share: a watch, a
// logger and a parse function that installs new contents.
type reloader struct {
	w     *watch
	log   atomic.Pointer[hclog.Logger]
	what  string
	parse func(contents [][]byte) error
}

func (r *reloader) init(what string, parse func([][]byte) error, paths ...string) error {
	r.w, r.what, r.parse = newWatch(paths...), what, parse
	l := hclog.NewNullLogger()
	r.log.Store(&l)
	return r.reload()
}

// check reloads when the interval passed and the files changed. A failure
// is logged and keeps the previous value.
func (r *reloader) check() {
	contents, changed, err := r.w.read(false)
	if err == nil && !changed {
		return
	}
	if err == nil {
		err = r.parse(contents)
	}
	log := *r.log.Load()
	if err != nil {
		log.Error("reload failed, keeping the previous one", "what", r.what, "error", err)
		return
	}
	log.Info("reloaded", "what", r.what)
}

// reload re-reads now, whatever the interval, and returns the error.
func (r *reloader) reload() error {
	contents, _, err := r.w.read(true)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.what, err)
	}
	if err := r.parse(contents); err != nil {
		return fmt.Errorf("load %s: %w", r.what, err)
	}
	return nil
}

// SetLogger sets where reloads and failed reloads are logged (default:
// nowhere).
func (r *reloader) SetLogger(l hclog.Logger) { r.log.Store(&l) }

// SetCheckInterval changes how often, at most, the files are re-read
// (DefaultCheckInterval; 0 = on every use, for tests).
func (r *reloader) SetCheckInterval(d time.Duration) { r.w.every.Store(int64(d)) }

// Reload re-reads the files now. On error the previous value stays.
func (r *reloader) Reload() error { return r.reload() }

// KeyPairFile is a certificate and its key read from PEM files, re-read
// when the files change (checked at most once per check interval, on the
// handshake that asks for the certificate). A pair that fails to load (a
// half-written file, a key that does not match) keeps the previous one and
// is logged.
type KeyPairFile struct {
	reloader
	cur atomic.Pointer[tls.Certificate]
}

// LoadKeyPairFile reads the pair; it must load now.
func LoadKeyPairFile(certFile, keyFile string) (*KeyPairFile, error) {
	k := &KeyPairFile{}
	err := k.init("key pair "+certFile, func(c [][]byte) error {
		cert, err := tls.X509KeyPair(c[0], c[1])
		if err != nil {
			return err
		}
		k.cur.Store(&cert)
		return nil
	}, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Certificate returns the current pair, reloading it first if due.
func (k *KeyPairFile) Certificate() *tls.Certificate {
	k.check()
	return k.cur.Load()
}

// GetCertificate serves tls.Config.GetCertificate.
func (k *KeyPairFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// GetClientCertificate serves tls.Config.GetClientCertificate.
func (k *KeyPairFile) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// CAFile is a bundle of trusted CA certificates read from a PEM file and
// re-read when it changes. tls.Config's RootCAs and ClientCAs are fixed at
// creation, so berth's configs verify peers themselves (Verifier) against
// Pool().
type CAFile struct {
	reloader
	cur atomic.Pointer[caSet]
}

type caSet struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
}

// LoadCAFile reads the bundle; it must hold at least one certificate.
func LoadCAFile(path string) (*CAFile, error) {
	c := &CAFile{}
	err := c.init("CA "+path, func(b [][]byte) error {
		set, err := parseCABundle(b[0])
		if err != nil {
			return err
		}
		c.cur.Store(set)
		return nil
	}, path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseCABundle(b []byte) (*caSet, error) {
	set := &caSet{pool: x509.NewCertPool()}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse CA certificate: %w", err)
		}
		set.pool.AddCert(cert)
		set.certs = append(set.certs, cert)
	}
	if len(set.certs) == 0 {
		return nil, errors.New("no PEM certificates")
	}
	return set, nil
}

// Pool returns the current trust roots, reloading them first if due.
func (c *CAFile) Pool() *x509.CertPool {
	c.check()
	return c.cur.Load().pool
}

func (c *CAFile) certs() []*x509.Certificate {
	c.check()
	return c.cur.Load().certs
}

// CRLFile is a certificate revocation list (PEM "X509 CRL" or DER, as
// `openssl ca -gencrl` or x509.CreateRevocationList write it) re-read when
// it changes. A list must be signed by a CA of the bundle; one that is not
// (or does not parse) is refused and the previous list stays.
type CRLFile struct {
	reloader
	ca  *CAFile
	cur atomic.Pointer[crlSet]
}

type crlSet struct {
	revoked    map[string]time.Time // issuer subject + serial → revocation time
	nextUpdate time.Time
	staleNoted atomic.Bool // "past its next update" logged
}

// LoadCRLFile reads the list, checking its signature against ca. The CA
// bundle's file is watched with it: a list refused because its CA was not
// in the bundle yet is read again when the bundle changes.
func LoadCRLFile(path string, ca *CAFile) (*CRLFile, error) {
	c := &CRLFile{ca: ca}
	err := c.init("CRL "+path, func(b [][]byte) error {
		set, err := parseCRL(b[0], ca.certs())
		if err != nil {
			return err
		}
		c.cur.Store(set)
		return nil
	}, path, ca.w.paths[0])
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseCRL(b []byte, cas []*x509.Certificate) (*crlSet, error) {
	der := b
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block %q, want X509 CRL", block.Type)
		}
		der = block.Bytes
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	if err := checkCRLSignature(list, cas); err != nil {
		return nil, err
	}
	set := &crlSet{revoked: map[string]time.Time{}, nextUpdate: list.NextUpdate}
	for _, e := range list.RevokedCertificateEntries {
		set.revoked[revocationKey(list.RawIssuer, e.SerialNumber.Bytes())] = e.RevocationTime
	}
	return set, nil
}

func checkCRLSignature(list *x509.RevocationList, cas []*x509.Certificate) error {
	var errs []error
	for _, ca := range cas {
		if !bytes.Equal(ca.RawSubject, list.RawIssuer) {
			continue
		}
		err := list.CheckSignatureFrom(ca)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("CRL is not signed by a CA of the bundle: %w", errors.Join(errs...))
}

func revocationKey(issuer, serial []byte) string { return string(issuer) + "/" + string(serial) }

// ErrRevoked means a certificate of the peer's chain is on the revocation
// list.
var ErrRevoked = errors.New("certificate revoked")

// Check returns ErrRevoked (wrapped) when cert is on the current list,
// reloading the list first if due.
func (c *CRLFile) Check(cert *x509.Certificate) error {
	c.check()
	set := c.cur.Load()
	if !set.nextUpdate.IsZero() && time.Now().After(set.nextUpdate) && !set.staleNoted.Swap(true) {
		// Still used: refusing every peer would be an outage.
		(*c.log.Load()).Warn("revocation list past its next update: re-sign it (scripts/pki.sh crl)",
			"what", c.what, "next_update", set.nextUpdate)
	}
	if at, ok := set.revoked[revocationKey(cert.RawIssuer, cert.SerialNumber.Bytes())]; ok {
		return fmt.Errorf("%w: %q serial %s, revoked %s", ErrRevoked, cert.Subject.CommonName,
			cert.SerialNumber.Text(16), at.UTC().Format(time.RFC3339))
	}
	return nil
}
