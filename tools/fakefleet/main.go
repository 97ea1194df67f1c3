// Command fakefleet serves many fake berth agents from one process, for the
// scheduler's footprint measurement (scheduler/footprint_test.go, run by
// `make bench` with BERTH_BENCH=1): each fake agent has its own mTLS
// listener on 127.0.0.1 with its own certificate (signed by the given CA,
// the server id as DNS SAN, the agent role), serves the part of the agent
// API the scheduler calls on an idle host — health, the event stream and
// the event log, the container list (empty), capacity and Docker info — and,
// with a gossip key, is a real memberlist member announcing agent metadata.
//
//	fakefleet -ca-cert ca.crt -ca-key ca.key -n 2500 -first 0 -out fleet.jsonl \
//	    [-gossip-key-file key -label berth -group 100]
//
// It writes one JSON line per agent to -out ({"id","agent_addr",
// "gossip_addr","leader"}), prints "ready" on stdout and serves until
// SIGINT or SIGTERM.
//
// Gossip at thousands of members in one machine: every member of a real
// pool holds every other one and pushes its whole state to each one that
// joins. Here each process splits its agents into groups of -group: the
// first of a group is its leader, the others join only it, and every fake
// admits only its leader, its group (if it leads one) and the scheduler, so
// a fake holds a handful of members and the scheduler — which joins the
// leaders (BERTH_JOIN) — learns the whole fleet. Fakes probe slowly (every
// 60 s) and gossip every second (leaders, which relay their group's
// refutations, every 200 ms) so that the scheduler, not the fleet, is what
// runs at full rate; the scheduler's own memberlist runs as configured.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/wire"
)

func main() {
	var o options
	flag.StringVar(&o.caCert, "ca-cert", "", "CA certificate (PEM) that signs the agents' certificates")
	flag.StringVar(&o.caKey, "ca-key", "", "CA key (PEM, EC or PKCS#8)")
	flag.IntVar(&o.n, "n", 100, "number of fake agents")
	flag.IntVar(&o.first, "first", 0, "index of the first agent (ids are <prefix><index>, 5 digits)")
	flag.StringVar(&o.prefix, "prefix", "fk-", "server id prefix")
	flag.StringVar(&o.out, "out", "", "where to write the agents' addresses (JSON lines)")
	flag.StringVar(&o.keyFile, "gossip-key-file", "", "gossip keyring file (base64 keys, one a line); empty: no gossip")
	flag.StringVar(&o.label, "label", "berth", "gossip cluster label")
	flag.IntVar(&o.group, "group", 100, "members per gossip group (see the package comment)")
	flag.StringVar(&o.scheduler, "scheduler-name", "scheduler", "the scheduler's gossip member name")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("fakefleet: ")
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

type options struct {
	caCert, caKey, prefix, out, keyFile, label, scheduler string
	n, first, group                                       int
}

// agentLine is what -out holds per agent.
type agentLine struct {
	ID         string `json:"id"`
	AgentAddr  string `json:"agent_addr"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	Leader     bool   `json:"leader,omitempty"`
}

func run(o options) error {
	if o.caCert == "" || o.caKey == "" || o.out == "" {
		return errors.New("-ca-cert, -ca-key and -out are required")
	}
	raiseNoFile()
	ca, caKey, err := loadCA(o.caCert, o.caKey)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	var keys [][]byte
	if o.keyFile != "" {
		raw, err := os.ReadFile(o.keyFile)
		if err != nil {
			return err
		}
		if keys, err = gossip.ParseKeys(raw); err != nil {
			return err
		}
	}
	// One key for every agent: each has its own certificate, which is what
	// the scheduler checks.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	agents := make([]*agent, o.n)
	for i := range o.n {
		id := fmt.Sprintf("%s%05d", o.prefix, o.first+i)
		cert, err := issue(ca, caKey, key, id)
		if err != nil {
			return err
		}
		a, err := startAgent(ctx, id, cert, pool)
		if err != nil {
			return fmt.Errorf("agent %s: %w", id, err)
		}
		agents[i] = a
	}
	if len(keys) > 0 {
		if err := startGossip(agents, keys, o); err != nil {
			return err
		}
	}
	f, err := os.Create(o.out)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, a := range agents {
		line := agentLine{ID: a.id, AgentAddr: a.addr, Leader: a.leader}
		if a.list != nil {
			line.GossipAddr = a.list.LocalNode().FullAddress().Addr
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.close()
		}()
	}
	wg.Wait()
	return nil
}

// raiseNoFile lifts the soft limit on open files to the hard one: each
// agent holds a listener, its connections and two gossip sockets.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func loadCA(certFile, keyFile string) (*x509.Certificate, any, error) {
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", certFile)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, err
	}
	raw, err = os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	if b, _ = pem.Decode(raw); b == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", keyFile)
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return ca, k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	return ca, k, err
}

// issue signs an agent certificate for id: DNS SAN id, IP SAN 127.0.0.1,
// the agent role URI and OU, server and client use.
func issue(ca *x509.Certificate, caKey any, key *ecdsa.PrivateKey, id string) (tls.Certificate, error) {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"berth"}, OrganizationalUnit: []string{wire.RoleAgent}, CommonName: id},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(48 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{id},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		URIs:         []*url.URL{mtls.RoleURL(wire.RoleAgent)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
