package mtls_test

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/shared/mtls"
	"berth/shared/wire"
)

// pkiSh runs scripts/pki.sh with args.
func pkiSh(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	out, err := exec.Command("../../scripts/pki.sh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pki.sh %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// The script's certificates are what the Go side wants: role by URI SAN
// and extended key usage, 30-day leaves; revoke, renew and unrevoke work on
// the list the Go side reads.
func TestPKIScript(t *testing.T) {
	dir := t.TempDir()
	pkiSh(t, "ca", dir)
	pkiSh(t, "agent", dir, "ws-1", "localhost", "127.0.0.1")
	pkiSh(t, "scheduler", dir)
	pkiSh(t, "crl", dir)
	ca := mustCA(t, filepath.Join(dir, "ca.crt"))
	crl, err := mtls.LoadCRLFile(filepath.Join(dir, "crl.pem"), ca)
	if err != nil {
		t.Fatal(err)
	}
	crl.SetCheckInterval(0)
	v := &mtls.Verifier{CA: ca, CRL: crl}
	sched := func() *x509.Certificate { return mustLeaf(t, filepath.Join(dir, "scheduler.crt")) }
	agent := mustLeaf(t, filepath.Join(dir, "ws-1.crt"))

	if err := v.Verify([]*x509.Certificate{agent}, x509.ExtKeyUsageServerAuth, "ws-1", wire.RoleAgent); err != nil {
		t.Errorf("agent as server: %v", err)
	}
	if err := v.Verify([]*x509.Certificate{agent}, x509.ExtKeyUsageClientAuth, "", wire.RoleAgent); err != nil {
		t.Errorf("agent as client of a peer: %v", err)
	}
	if err := v.Verify([]*x509.Certificate{sched()}, x509.ExtKeyUsageClientAuth, "", wire.RoleScheduler); err != nil {
		t.Errorf("scheduler: %v", err)
	}
	if err := v.Verify([]*x509.Certificate{sched()}, x509.ExtKeyUsageServerAuth, "", wire.RoleScheduler); err == nil {
		t.Error("scheduler certificate accepted as a server, want clientAuth only")
	}
	if life := agent.NotAfter.Sub(agent.NotBefore); life > 31*24*time.Hour {
		t.Errorf("leaf lifetime %s, want 30 days", life)
	}

	old := sched()
	pkiSh(t, "revoke", dir, "scheduler")
	if err := v.Verify([]*x509.Certificate{old}, x509.ExtKeyUsageClientAuth, "", wire.RoleScheduler); !errors.Is(err, mtls.ErrRevoked) {
		t.Fatalf("revoked scheduler: err = %v, want ErrRevoked", err)
	}
	pkiSh(t, "renew", dir, "scheduler")
	if renewed := sched(); renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("renew kept the serial")
	} else if err := v.Verify([]*x509.Certificate{renewed}, x509.ExtKeyUsageClientAuth, "", wire.RoleScheduler); err != nil {
		t.Errorf("renewed scheduler: %v", err)
	}
	pkiSh(t, "unrevoke", dir, old.SerialNumber.Text(16))
	if err := v.Verify([]*x509.Certificate{old}, x509.ExtKeyUsageClientAuth, "", wire.RoleScheduler); err != nil {
		t.Errorf("un-revoked scheduler: %v", err)
	}

	pkiSh(t, "renew", dir, "ws-1")
	renewed := mustLeaf(t, filepath.Join(dir, "ws-1.crt"))
	if got, want := strings.Join(renewed.DNSNames, ","), "ws-1,localhost"; got != want {
		t.Errorf("renewed agent DNS SANs = %s, want %s", got, want)
	}
	if len(renewed.IPAddresses) != 1 || renewed.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("renewed agent IP SANs = %v, want 127.0.0.1", renewed.IPAddresses)
	}
}

// A certificate issued before role URI SANs (OU only) is re-issued by
// `pki.sh agent` (dev-certs); a current one is kept.
func TestPKIScriptReissuesOUOnly(t *testing.T) {
	dir := t.TempDir()
	pkiSh(t, "ca", dir)
	legacy := exec.Command("bash", "-euc", `
		cd "$1"
		openssl ecparam -name prime256v1 -genkey -noout -out ws-1.key
		openssl req -new -key ws-1.key -subj "/O=berth/OU=berth-agent/CN=ws-1" -out ws-1.csr
		printf 'extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:ws-1\n' > ext
		openssl x509 -req -in ws-1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -extfile ext -out ws-1.crt 2>/dev/null`, "legacy", dir)
	if out, err := legacy.CombinedOutput(); err != nil {
		t.Fatalf("legacy certificate: %v\n%s", err, out)
	}
	v := &mtls.Verifier{CA: mustCA(t, filepath.Join(dir, "ca.crt"))}
	err := v.Verify([]*x509.Certificate{mustLeaf(t, filepath.Join(dir, "ws-1.crt"))}, x509.ExtKeyUsageServerAuth, "ws-1", wire.RoleAgent)
	if !errors.Is(err, mtls.ErrWrongRole) {
		t.Fatalf("OU-only certificate: err = %v, want ErrWrongRole", err)
	}
	pkiSh(t, "agent", dir, "ws-1")
	reissued := mustLeaf(t, filepath.Join(dir, "ws-1.crt"))
	if err := v.Verify([]*x509.Certificate{reissued}, x509.ExtKeyUsageServerAuth, "ws-1", wire.RoleAgent); err != nil {
		t.Fatalf("re-issued certificate: %v", err)
	}
	pkiSh(t, "agent", dir, "ws-1")
	if again := mustLeaf(t, filepath.Join(dir, "ws-1.crt")); again.SerialNumber.Cmp(reissued.SerialNumber) != 0 {
		t.Error("a current certificate was re-issued, want it kept")
	}
	if _, err := os.Stat(filepath.Join(dir, ".ws-1.crt.new")); err == nil {
		t.Error("temporary file left behind")
	}
}
