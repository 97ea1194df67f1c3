package fence

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/shared/wire"
)

type fakeDocker struct {
	mu      sync.Mutex
	cs      []wire.Container
	stopped []string
}

func (f *fakeDocker) List(context.Context) ([]wire.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.Container(nil), f.cs...), nil
}

func (f *fakeDocker) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, id)
	return nil
}

func TestFenceIsolated(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name       string
		lease      time.Duration
		sinceLast  time.Duration
		peers      int
		wantFenced bool
	}{
		{"recent contact", 30 * time.Second, 5 * time.Second, 0, false},
		{"peers alive", 30 * time.Second, time.Hour, 2, false},
		{"cut off past lease", 30 * time.Second, 31 * time.Second, 0, true},
		{"exactly the lease", 30 * time.Second, 30 * time.Second, 0, false},
		{"disabled", 0, time.Hour, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(tt.lease, func() time.Time { return now.Add(-tt.sinceLast) }, func() int { return tt.peers }, &fakeDocker{}, hclog.NewNullLogger())
			f.now = func() time.Time { return now }
			if got := f.Isolated(); got != tt.wantFenced {
				t.Errorf("Isolated() = %v, want %v", got, tt.wantFenced)
			}
		})
	}
}

// StopAll stops running workspaces only, and never removes anything.
func TestFenceStopAll(t *testing.T) {
	d := &fakeDocker{cs: []wire.Container{
		{ID: "a", State: "running", Labels: map[string]string{wire.LabelPodexWorkspace: "true"}},
		{ID: "b", State: "exited", Labels: map[string]string{wire.LabelPodexWorkspace: "true"}},
		{ID: "c", State: "running", Labels: map[string]string{}},
	}}
	f := New(time.Second, time.Now, func() int { return 0 }, d, hclog.NewNullLogger())
	if err := f.StopAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(d.stopped) != 1 || d.stopped[0] != "a" {
		t.Errorf("stopped = %v, want [a]", d.stopped)
	}
}
