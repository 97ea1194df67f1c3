package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/agent/agenttest"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// answerLoss makes agents create containers whose answers never reach the
// scheduler: the agent makes the container, then either breaks the
// connection (cut) or holds the answer until the scheduler gives up (its
// CreateTimeout). Only the first create is lost unless every is set.
type answerLoss struct {
	t     *testing.T
	cut   bool
	every bool

	mu   sync.Mutex
	lost map[string][]string // server → ids of the containers made whose answer was lost
}

func (l *answerLoss) install(a *agenttest.Agent) {
	a.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			if !isCreate(q) || !l.claim() {
				next.ServeHTTP(w, q)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, q) // the agent makes the container
			var made wire.Container
			if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &made) != nil {
				l.t.Errorf("create on %s before its answer was lost: got %d %s, want 201", a.ServerID, rec.Code, rec.Body)
			}
			l.mu.Lock()
			l.lost[a.ServerID] = append(l.lost[a.ServerID], made.ID)
			l.mu.Unlock()
			if l.cut {
				panic(http.ErrAbortHandler) // net/http closes the connection without an answer
			}
			<-q.Context().Done() // the scheduler hung up
		})
	})
}

// claim reports whether this create's answer is to be lost.
func (l *answerLoss) claim() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = map[string][]string{}
	}
	return l.every || len(l.lost) == 0
}

func (l *answerLoss) victims() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for k, v := range l.lost {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Create and the move of a workspace share one launch: when an agent made
// the container but its answer was lost (a timeout, a cut connection), the
// container is removed from that candidate, the failure is recorded as a
// placement.retry, and the next candidate is used; when every answer is
// lost, nothing is left running on any candidate.
func TestLaunchRemovesContainerWhoseAnswerWasLost(t *testing.T) {
	// (A restart of a workspace whose server is lost is refused while that
	// server is down: its home is there. homes_test.go covers it.)
	const (
		create   = "create"
		draining = "restart on a draining server"
	)
	type test struct {
		op    string
		cut   bool
		every bool
	}
	var tests []test
	for _, op := range []string{create, draining} {
		for _, cut := range []bool{false, true} {
			tests = append(tests, test{op: op, cut: cut})
		}
		tests = append(tests, test{op: op, cut: true, every: true})
	}
	for _, tt := range tests {
		name := tt.op + map[bool]string{false: ", answer timed out", true: ", connection cut"}[tt.cut] +
			map[bool]string{false: ", next candidate", true: ", on every candidate"}[tt.every]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t, 4, "ws-1", "ws-2", "ws-3")
			from := ""
			if tt.op != create {
				ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
				if err != nil {
					t.Fatal(err)
				}
				from = ws.ServerID
				r.setState(from, fleet.StateDraining)
			}
			loss := &answerLoss{t: t, cut: tt.cut, every: tt.every}
			for id, a := range r.agents {
				if id != from {
					loss.install(a)
				}
			}
			// Long enough for the agent to have made the container under a loaded
			// -race run: a create still in progress when the scheduler gives up is
			// not found by the removal, and is reconciliation's (OrphanGrace).
			orch := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.CreateTimeout = 2 * time.Second })

			var err error
			if tt.op == create {
				_, err = orch.Create(ctx, createReq("w1", "u1"))
			} else {
				ws, gerr := orch.Get(ctx, "w1")
				if gerr != nil {
					t.Fatal(gerr)
				}
				err = orch.Restart(ctx, ws)
			}

			victims := loss.victims()
			wantVictims := 1
			if tt.every {
				wantVictims = 2 // every candidate: the servers other than from, or two of three for a create
				if tt.op == create {
					wantVictims = 3
				}
			}
			if len(victims) != wantVictims {
				t.Fatalf("servers whose answer was lost: got %v, want %d", victims, wantVictims)
			}
			evs := r.events("w1")
			for server, ids := range victims {
				if server == from {
					t.Errorf("the workspace was placed back on %s, the server it leaves", from)
				}
				for _, c := range r.agents[server].Containers() {
					t.Errorf("%s still has container %s (%s) after its answer was lost, want it removed (made: %v)", server, c.ID, c.Name, ids)
				}
				if len(r.agents[server].RemovedData()) != 0 {
					t.Errorf("%s: data was removed, want it kept", server)
				}
				if !slices.Contains(evs, "placement.retry@"+server) {
					t.Errorf("events: got %q, want a placement.retry on %s", evs, server)
				}
			}

			ws, gerr := r.db.GetWorkspace(ctx, "w1")
			switch {
			case tt.every && tt.op == create:
				if !errors.Is(err, orchestrator.ErrCreateFailed) {
					t.Errorf("Create: got %v, want ErrCreateFailed", err)
				}
				if !errors.Is(gerr, registry.ErrNotFound) {
					t.Errorf("row after the failed create: got %+v, %v; want none", ws, gerr)
				}
			case tt.every:
				if !errors.Is(err, orchestrator.ErrCreateFailed) {
					t.Errorf("Restart: got %v, want ErrCreateFailed", err)
				}
				if gerr != nil || ws.Status != fleet.StatusError || !strings.HasPrefix(ws.StatusReason, "re-placement failed: ") {
					t.Errorf("row after the failed move: got %s (%s), %v; want error: re-placement failed", ws.Status, ws.StatusReason, gerr)
				}
			default:
				if err != nil {
					t.Fatalf("%s: %v", tt.op, err)
				}
				if gerr != nil || ws.Status != fleet.StatusRunning || victims[ws.ServerID] != nil || ws.ServerID == from {
					t.Fatalf("row: got %s on %s (%v), want running on a server other than %v and %s", ws.Status, ws.ServerID, gerr, victims, from)
				}
				containers := r.containersOf("w1")
				if cs := containers[ws.ServerID]; len(containers) != 1 || len(cs) != 1 || cs[0].ID != ws.ContainerID {
					t.Errorf("containers of w1: got %+v, want only the recorded %s on %s", containers, ws.ContainerID, ws.ServerID)
				}
			}
			if tt.op == draining {
				if n := len(r.agents[from].Containers()); n != 0 {
					t.Errorf("containers on the drained %s: got %d, want the old one removed", from, n)
				}
			}
		})
	}
}
