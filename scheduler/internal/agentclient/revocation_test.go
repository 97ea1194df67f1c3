package agentclient_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// An agent whose certificate is revoked while the scheduler holds an open
// connection to it is refused on the scheduler's next call (the answer's
// certificate is re-verified), and accepted again once un-revoked.
func TestRevokedAgentRefusedOnOpenConnection(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := agenttest.Start(t, pki, "ws-1")
	crl := filepath.Join(t.TempDir(), "crl.pem")
	pki.WriteCRL(crl)
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	d, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile, CRL: crl})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Client("ws-1", a.Addr())
	health := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.Health(ctx)
		return err
	}
	if err := health(); err != nil {
		t.Fatal(err)
	}
	pki.WriteCRL(crl, filepath.Join(pki.Dir, "ws-1.crt"))
	var err2 error
	testutil.Eventually(t, 5*time.Second, "the revoked agent refused", func() bool { err2 = health(); return err2 != nil })
	if !errors.Is(err2, agentclient.ErrUnreachable) || !strings.Contains(err2.Error(), "certificate revoked") {
		t.Fatalf("err = %v, want unreachable: certificate revoked", err2)
	}
	pki.WriteCRL(crl)
	testutil.Eventually(t, 5*time.Second, "accepted again once un-revoked", func() bool { return health() == nil })
}
