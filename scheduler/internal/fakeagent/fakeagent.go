// Package fakeagent is an in-process stand-in for a berth agent, for the
// scheduler's unit tests and benchmarks: it serves the agent API's
// container routes, and fixed health, capacity, info and image answers, over
// real mTLS (certificates from shared/testutil) and keeps containers and
// images in memory. It is a fake for fast tests of scheduler
// logic; the real agent is tested against real Docker elsewhere.
package fakeagent

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// Agent is one fake agent. Safe for concurrent use.
type Agent struct {
	ServerID string
	Server   *httptest.Server

	// FailCreate makes every create answer with this wire error code.
	FailCreate atomic.Value // string
	// Down makes every request fail at the HTTP level with 503.
	Down atomic.Bool
	// FailPull makes every image pull end with this error line.
	FailPull atomic.Value // string
	// FailUpdate makes every container update answer with this wire error
	// code.
	FailUpdate atomic.Value // string

	mu         sync.Mutex
	containers map[string]wire.Container
	removed    []string // data paths removed
	images     []wire.Image
	seq        int
}

// Start serves a fake agent for serverID with a certificate from pki.
func Start(t testing.TB, pki *testutil.PKI, serverID string) *Agent {
	t.Helper()
	cert, key := pki.Issue(serverID, wire.RoleAgent, true, serverID, "127.0.0.1")
	cfg, err := mtls.ServerConfig(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, wire.RoleScheduler)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{ServerID: serverID, containers: map[string]wire.Container{}}
	a.FailCreate.Store("")
	a.FailPull.Store("")
	a.FailUpdate.Store("")
	a.images = []wire.Image{{ID: "sha256:" + strings.Repeat("ab", 32), Tags: []string{"berth/workspace:dev"},
		Size: 300 << 20, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.Server.TLS = cfg
	a.Server.StartTLS()
	t.Cleanup(a.Server.Close)
	return a
}

// Addr is the agent's host:port.
func (a *Agent) Addr() string { return a.Server.Listener.Addr().String() }

// Containers returns a copy of the containers.
func (a *Agent) Containers() []wire.Container {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]wire.Container, 0, len(a.containers))
	for _, c := range a.containers {
		out = append(out, c)
	}
	return out
}

// RemovedData lists the data paths removed so far.
func (a *Agent) RemovedData() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.removed...)
}

func (a *Agent) serve(w http.ResponseWriter, r *http.Request) {
	if a.Down.Load() {
		writeErr(w, http.StatusServiceUnavailable, wire.CodeUnavailable, "down")
		return
	}
	p := r.URL.Path
	switch {
	case p == wire.PathHealth:
		writeJSON(w, http.StatusOK, wire.Health{Status: "ok", ServerID: a.ServerID, DockerOK: true, Time: time.Now()})
	case p == wire.PathCapacity:
		writeJSON(w, http.StatusOK, a.capacity())
	case p == wire.PathInfo:
		a.mu.Lock()
		info := wire.DockerInfo{ServerVersion: "fake-1.0", OS: "Fake Linux", Architecture: "x86_64",
			Containers: len(a.containers), Images: len(a.images), MemoryTotal: 8 << 30, CPUs: 4}
		a.mu.Unlock()
		writeJSON(w, http.StatusOK, info)
	case p == wire.PathImages && r.Method == http.MethodGet:
		a.mu.Lock()
		imgs := append([]wire.Image(nil), a.images...)
		a.mu.Unlock()
		writeJSON(w, http.StatusOK, imgs)
	case p == wire.PathImagePull && r.Method == http.MethodPost:
		a.pull(w, r)
	case p == wire.PathContainers && r.Method == http.MethodPost:
		a.create(w, r)
	case p == wire.PathContainers && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, a.Containers())
	case p == wire.PathData && r.Method == http.MethodDelete:
		a.mu.Lock()
		a.removed = append(a.removed, r.URL.Query().Get("path"))
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(p, wire.PathContainers+"/"):
		a.container(w, r, strings.TrimPrefix(p, wire.PathContainers+"/"))
	default:
		writeErr(w, http.StatusNotFound, wire.CodeNotFound, "no route "+p)
	}
}

func (a *Agent) create(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateContainerRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, wire.CodeBadRequest, err.Error())
		return
	}
	if code := a.FailCreate.Load().(string); code != "" {
		writeErr(w, http.StatusBadGateway, code, "injected failure")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.containers {
		if c.Name == req.Name {
			writeErr(w, http.StatusConflict, wire.CodeConflict, "name in use")
			return
		}
	}
	a.seq++
	labels := map[string]string{wire.LabelManaged: "true", wire.LabelServerID: a.ServerID, wire.LabelEpoch: fmt.Sprint(req.Epoch)}
	for k, v := range req.Labels {
		labels[k] = v
	}
	if req.WorkspaceID != "" {
		labels[wire.LabelPodexWorkspace], labels[wire.LabelWorkspaceID] = "true", req.WorkspaceID
	}
	state := "created"
	if req.Start {
		state = "running"
	}
	c := wire.Container{ID: fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(a.ServerID, a.seq)))), Name: req.Name, Image: req.Image,
		State: state, Labels: labels, Resources: req.Resources, CreatedAt: time.Now()}
	a.containers[c.ID] = c
	writeJSON(w, http.StatusCreated, c)
}

func (a *Agent) container(w http.ResponseWriter, r *http.Request, rest string) {
	id, action, _ := strings.Cut(rest, "/")
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.containers[id]
	if !ok {
		writeErr(w, http.StatusNotFound, wire.CodeNotFound, "no such container")
		return
	}
	switch {
	case action == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, c)
	case action == "" && r.Method == http.MethodDelete:
		delete(a.containers, id)
		w.WriteHeader(http.StatusNoContent)
	case action == "start":
		c.State = "running"
		a.containers[id] = c
		w.WriteHeader(http.StatusNoContent)
	case action == "stop":
		c.State = "exited"
		a.containers[id] = c
		w.WriteHeader(http.StatusNoContent)
	case action == "stats":
		writeJSON(w, http.StatusOK, wire.ContainerStats{CPUPercent: 12.5, CPULimitCores: c.Resources.CPU,
			MemoryUsedMB: 256, MemoryLimitMB: c.Resources.MemoryMB, MemoryPercent: 25, UptimeSeconds: 60,
			CollectedAt: time.Now()})
	case action == "update" && r.Method == http.MethodPost:
		var res wire.Resources
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			writeErr(w, http.StatusBadRequest, wire.CodeBadRequest, err.Error())
			return
		}
		if code := a.FailUpdate.Load().(string); code != "" {
			writeErr(w, http.StatusBadGateway, code, "injected failure")
			return
		}
		c.Resources = res
		a.containers[id] = c
		w.WriteHeader(http.StatusNoContent)
	case action == "exec":
		writeJSON(w, http.StatusOK, wire.ExecResult{ExitCode: 0, Stdout: []byte("ok\n")})
	default:
		writeErr(w, http.StatusNotFound, wire.CodeNotFound, "no route "+action)
	}
}

// capacity is a fixed 4-core, 8 GiB, 100 GB host with the fake's containers.
func (a *Agent) capacity() wire.Capacity {
	a.mu.Lock()
	defer a.mu.Unlock()
	running := 0
	for _, c := range a.containers {
		if c.State == "running" {
			running++
		}
	}
	return wire.Capacity{ServerID: a.ServerID, Architecture: "amd64", CPUCores: 4, CPUPercent: 10,
		MemoryTotalMB: 8192, MemoryAvailableMB: 6144, DiskTotalGB: 100, DiskFreeGB: 80, DiskPath: "/var/lib/docker",
		Containers: len(a.containers), ContainersRunning: running, Images: len(a.images),
		Workspaces: len(a.containers), SampledAt: time.Now()}
}

// pull streams two progress lines and a final one; the image is added to
// the list unless FailPull is set.
func (a *Agent) pull(w http.ResponseWriter, r *http.Request) {
	var req wire.PullRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Image == "" {
		writeErr(w, http.StatusBadRequest, wire.CodeBadRequest, "image is required")
		return
	}
	ref := req.Image + ":" + req.Tag
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	_ = enc.Encode(wire.PullProgress{Status: "Pulling from " + req.Image, ID: req.Tag})
	_ = enc.Encode(wire.PullProgress{Status: "Downloading", ID: "layer1", Progress: "[=====>    ] 5MB/10MB"})
	if msg := a.FailPull.Load().(string); msg != "" {
		_ = enc.Encode(wire.PullProgress{Done: true, Error: msg})
		return
	}
	a.mu.Lock()
	a.images = append(a.images, wire.Image{ID: fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(ref))), Tags: []string{ref},
		Size: 10 << 20, Created: time.Now().UTC()})
	a.mu.Unlock()
	_ = enc.Encode(wire.PullProgress{Status: "Status: Downloaded newer image for " + ref, Done: true})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Code: code, Message: msg})
}
