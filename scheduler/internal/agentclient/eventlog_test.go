package agentclient_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// EventsSince reads the agent's event log over mTLS: a first call resets,
// the events after a cursor come in order, and an agent that keeps no log
// (one older than the route) is ErrNoEventLog.
func TestEventsSince(t *testing.T) {
	r := newStreamRig(t, agenttest.StreamConfig{})
	ctx := streamCtx(t)
	first, err := r.client.EventsSince(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Reset || len(first.Events) != 0 || first.Seq == 0 {
		t.Fatalf("first call: %+v, want a reset at a number", first)
	}
	h, err := r.client.Health(ctx)
	if err != nil || h.EventSeq != first.Seq {
		t.Errorf("health event_seq %d (%v), want %d", h.EventSeq, err, first.Seq)
	}
	if err := r.agent.Exit(r.ctr.ID, 3); err != nil {
		t.Fatal(err)
	}
	var got wire.EventLog
	testutil.Eventually(t, 5*time.Second, "the die event in the log", func() bool {
		got, err = r.client.EventsSince(ctx, first.Seq)
		return err == nil && len(got.Events) > 0
	})
	if got.Reset || got.Events[0].Action != "die" || got.Events[0].ExitCode != 3 || got.Seq != first.Seq+1 {
		t.Errorf("after the exit: %+v, want the die event numbered %d", got, first.Seq+1)
	}

	r.agent.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == wire.PathEventLog { // as an agent without the route answers
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"code":"not_found","message":"Not Found"}`))
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	if _, err := r.client.EventsSince(ctx, got.Seq); !errors.Is(err, agentclient.ErrNoEventLog) {
		t.Errorf("an agent without the route: %v, want ErrNoEventLog", err)
	}
}
