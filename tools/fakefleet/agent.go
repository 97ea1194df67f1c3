package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"berth/shared/version"
	"berth/shared/wire"
)

// agent is one fake agent: an idle host with no containers whose dockerd
// answers.
type agent struct {
	id     string
	addr   string // host:port of its mTLS API
	seq    uint64 // its event log's number: the start time in µs, no events
	srv    *http.Server
	list   *memberlist.Memberlist // nil without gossip
	leader bool
}

// startAgent serves id's API on a new listener on 127.0.0.1 until ctx
// ends (or close).
func startAgent(ctx context.Context, id string, cert tls.Certificate, clients *x509.CertPool) (*agent, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &agent{id: id, addr: l.Addr().String(), seq: uint64(time.Now().UnixMicro())}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathHealth, a.health)
	mux.HandleFunc("GET "+wire.PathEvents, a.events)
	mux.HandleFunc("GET "+wire.PathEventLog, a.eventLog)
	mux.HandleFunc("GET "+wire.PathContainers, func(w http.ResponseWriter, _ *http.Request) { answer(w, []wire.Container{}) })
	mux.HandleFunc("GET "+wire.PathCapacity, a.capacity)
	mux.HandleFunc("GET "+wire.PathInfo, func(w http.ResponseWriter, _ *http.Request) {
		answer(w, wire.DockerInfo{ServerVersion: "fake", OS: "linux", Architecture: "amd64"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(wire.Error{Code: wire.CodeNotFound, Message: "fakefleet: no route " + r.Method + " " + r.URL.Path})
	})
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // the agent's BERTH_HTTP_IDLE_TIMEOUT default
		ErrorLog:          log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    clients,
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
		// HTTP/1.1 only, as the agent: it serves its TLS listener without
		// offering h2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() { _ = a.srv.ServeTLS(l, "", "") }()
	return a, nil
}

func (a *agent) close() {
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = a.srv.Shutdown(sctx)
	_ = a.srv.Close() // the event streams
	if a.list != nil {
		_ = a.list.Shutdown()
	}
}

func (a *agent) health(w http.ResponseWriter, _ *http.Request) {
	answer(w, wire.Health{Status: "ok", ServerID: a.id, Version: version.Version, DockerOK: true, Time: time.Now().UTC(), EventSeq: a.seq})
}

// events is the long-lived event stream: open, then nothing until the
// scheduler hangs up.
func (a *agent) events(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	<-r.Context().Done()
}

// eventLog answers the event log: no events ever, so any other cursor
// than the latest number is reset.
func (a *agent) eventLog(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get(wire.QueryAfter), 10, 64)
	answer(w, wire.EventLog{Seq: a.seq, Reset: after != a.seq, Events: []wire.ContainerEvent{}})
}

func (a *agent) capacity(w http.ResponseWriter, _ *http.Request) {
	answer(w, wire.Capacity{ServerID: a.id, Architecture: "amd64", CPUCores: 4, CPUPercent: 10,
		MemoryTotalMB: 8192, MemoryAvailableMB: 6144, DiskTotalGB: 100, DiskFreeGB: 80,
		DiskPath: "/var/lib/docker", SampledAt: time.Now().UTC()})
}

// meta is what the fake gossips: the capacity above.
func (a *agent) meta() wire.NodeMeta {
	return wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: a.id, AgentAddr: a.addr, Architecture: "amd64",
		CPUMilli: 4000, CPUUsedPct: 10, MemTotalMB: 8192, MemFreeMB: 6144, DiskTotalGB: 100, DiskFreeGB: 80,
		Version: version.Version, Seq: 1, EventSeq: a.seq}
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
