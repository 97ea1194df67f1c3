package registry

import (
	"berth/scheduler/internal/fleet"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

func TestReserveAndInsertCapacity(t *testing.T) {
	ctx := context.Background()
	starter := fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}
	tests := []struct {
		name     string
		existing []fleet.Resources // reservations already on the server
		req      fleet.Resources
		limits   Limits
		wantErr  error
	}{
		{name: "empty server, no limits", req: starter},
		{name: "zero limits are unlimited", existing: []fleet.Resources{{CPU: 1000, MemoryMB: 1 << 40}}, req: starter},
		{
			name: "exactly full fits", existing: []fleet.Resources{starter, starter}, req: starter,
			limits: Limits{CPU: 6, MemoryMB: 3 * 4096, DiskGB: 60, BandwidthMbps: 300, MaxWorkspaces: 3},
		},
		{
			name: "cpu over by a little", existing: []fleet.Resources{starter}, req: starter,
			limits: Limits{CPU: 3.99}, wantErr: ErrInsufficientCapacity,
		},
		{
			name: "memory over by one MB", existing: []fleet.Resources{starter}, req: starter,
			limits: Limits{MemoryMB: 8191}, wantErr: ErrInsufficientCapacity,
		},
		{
			name: "disk over", existing: []fleet.Resources{starter}, req: starter,
			limits: Limits{DiskGB: 39}, wantErr: ErrInsufficientCapacity,
		},
		{
			name: "bandwidth over", existing: []fleet.Resources{starter}, req: starter,
			limits: Limits{BandwidthMbps: 150}, wantErr: ErrInsufficientCapacity,
		},
		{
			name: "gpus over", existing: []fleet.Resources{{GPUCount: 1}}, req: fleet.Resources{GPUCount: 1},
			limits: Limits{GPUCount: 1}, wantErr: ErrInsufficientCapacity,
		},
		{
			name: "max workspaces reached", existing: []fleet.Resources{{}, {}}, req: fleet.Resources{},
			limits: Limits{MaxWorkspaces: 2}, wantErr: ErrInsufficientCapacity,
		},
		{
			name: "max workspaces has one slot left", existing: []fleet.Resources{{}, {}}, req: fleet.Resources{},
			limits: Limits{MaxWorkspaces: 3},
		},
		{
			name:     "fractional cpu adds up to exactly full",
			existing: []fleet.Resources{{CPU: 0.1}, {CPU: 0.1}, {CPU: 0.1}, {CPU: 0.1}, {CPU: 0.1}, {CPU: 0.1}, {CPU: 0.1}, {CPU: 0.1}, {CPU: 0.1}},
			req:      fleet.Resources{CPU: 0.1}, limits: Limits{CPU: 1},
		},
		{name: "negative request", req: fleet.Resources{MemoryMB: -1}, wantErr: ErrInvalid},
		{name: "negative limit", req: starter, limits: Limits{CPU: -1}, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "s"})
			for i, r := range tt.existing {
				mustReserve(t, db, Workspace{ID: fmt.Sprintf("old-%d", i), UserID: "u", ServerID: "s", Reservation: r}, Limits{})
			}
			_, err := db.ReserveAndInsert(ctx, Workspace{ID: "new", UserID: "u", ServerID: "s", Reservation: tt.req}, Credentials{}, tt.limits)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReserveAndInsert: got %v, want %v", err, tt.wantErr)
			}
			_, gerr := db.GetWorkspace(ctx, "new")
			if inserted := gerr == nil; inserted != (err == nil) {
				t.Errorf("row inserted: got %v, want %v", inserted, err == nil)
			}
			usage, err := db.ServerUsage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantCount := len(tt.existing)
			if tt.wantErr == nil {
				wantCount++
			}
			if got := usage["s"].Workspaces; got != wantCount {
				t.Errorf("workspaces on the server: got %d, want %d", got, wantCount)
			}
		})
	}
}

func TestReserveAndInsertRow(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s", Hostname: "ws-1.example.net"})
	mustCreateServer(t, db, Server{ID: "nohost"})

	t.Run("defaults and forced fields", func(t *testing.T) {
		got := mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s", Status: fleet.StatusRunning, Epoch: 99}, Limits{})
		if got.Status != fleet.StatusCreating {
			t.Errorf("Status: got %q, want %q", got.Status, fleet.StatusCreating)
		}
		if got.Epoch != 1 {
			t.Errorf("Epoch: got %d, want 1", got.Epoch)
		}
		if got.Port != DefaultPort {
			t.Errorf("Port: got %d, want %d", got.Port, DefaultPort)
		}
		if got.Host != "ws-1.example.net" {
			t.Errorf("Host: got %q, want the server's hostname", got.Host)
		}
		if got.CreatedAt.IsZero() || !got.LastActivity.Equal(got.CreatedAt) || !got.UpdatedAt.Equal(got.CreatedAt) {
			t.Errorf("times: created %v, last activity %v, updated %v; want all equal and set",
				got.CreatedAt, got.LastActivity, got.UpdatedAt)
		}
	})
	t.Run("host falls back to the server id", func(t *testing.T) {
		got := mustReserve(t, db, Workspace{ID: "w2", UserID: "u", ServerID: "nohost"}, Limits{})
		if got.Host != "nohost" {
			t.Errorf("Host: got %q, want %q", got.Host, "nohost")
		}
	})

	errTests := []struct {
		name    string
		ws      Workspace
		creds   Credentials
		wantErr error
	}{
		{"existing id", Workspace{ID: "w", UserID: "someone-else", ServerID: "nohost"}, Credentials{Git: "u:t"}, ErrExists},
		{"unknown server", Workspace{ID: "w3", UserID: "u", ServerID: "ghost"}, Credentials{Git: "u:t"}, ErrNotFound},
		{"no server", Workspace{ID: "w3", UserID: "u"}, Credentials{}, ErrInvalid},
		{"no user", Workspace{ID: "w3", ServerID: "s"}, Credentials{}, ErrInvalid},
		{"no id", Workspace{UserID: "u", ServerID: "s"}, Credentials{}, ErrInvalid},
		{"newline in a setting", Workspace{ID: "w3", UserID: "u", ServerID: "s",
			Settings: Settings{GitName: "Ada\n[core]"}}, Credentials{}, ErrInvalid},
		{"NUL in a setting", Workspace{ID: "w3", UserID: "u", ServerID: "s",
			Settings: Settings{BaseImage: "img\x00"}}, Credentials{}, ErrInvalid},
		{"invalid UTF-8 in a setting", Workspace{ID: "w3", UserID: "u", ServerID: "s",
			Settings: Settings{GitBranch: "\xff"}}, Credentials{}, ErrInvalid},
		{"newline in the credentials", Workspace{ID: "w3", UserID: "u", ServerID: "s"},
			Credentials{Git: "u:t\nhttps://x:y@evil"}, ErrInvalid},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.ReserveAndInsert(ctx, tt.ws, tt.creds, Limits{})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ReserveAndInsert: got %v, want %v", err, tt.wantErr)
			}
			if strings.Contains(fmt.Sprint(err), "evil") {
				t.Errorf("error shows the credentials: %v", err)
			}
		})
	}
	t.Run("refused inserts store no credentials", func(t *testing.T) {
		if got, err := db.GetCredentials(ctx, "w"); err != nil || got != (Credentials{}) {
			t.Errorf("GetCredentials(w): got %+v (err %v), want none", got, err)
		}
		var n int
		if err := db.read.QueryRow("SELECT COUNT(*) FROM workspace_credentials").Scan(&n); err != nil || n != 0 {
			t.Errorf("credentials rows: got %d (err %v), want 0", n, err)
		}
	})
	t.Run("existing row is kept and readable", func(t *testing.T) {
		got, err := db.GetWorkspace(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != "u" || got.ServerID != "s" {
			t.Errorf("existing row: got user %q server %q, want u, s", got.UserID, got.ServerID)
		}
	})
}

func TestReserveAndInsertRefusesInactiveServers(t *testing.T) {
	ctx := context.Background()
	for _, state := range []fleet.State{fleet.StateDraining, fleet.StateCordoned} {
		t.Run(string(state), func(t *testing.T) {
			db, _ := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "s", State: state})
			_, err := db.ReserveAndInsert(ctx, Workspace{ID: "w", UserID: "u", ServerID: "s"}, Credentials{}, Limits{})
			if !errors.Is(err, ErrServerNotActive) {
				t.Errorf("ReserveAndInsert: got %v, want ErrServerNotActive", err)
			}
		})
	}
}

func TestEpochsIncreasePerServer(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "a"})
	mustCreateServer(t, db, Server{ID: "b"})
	steps := []struct {
		id, server string
		wantEpoch  int64
	}{
		{"w1", "a", 1}, {"w2", "a", 2}, {"w3", "b", 1}, {"w4", "a", 3}, {"w5", "b", 2},
	}
	for _, st := range steps {
		got := mustReserve(t, db, Workspace{ID: st.id, UserID: "u", ServerID: st.server}, Limits{})
		if got.Epoch != st.wantEpoch {
			t.Errorf("%s on %s: got epoch %d, want %d", st.id, st.server, got.Epoch, st.wantEpoch)
		}
	}
	// Deleting rows never lowers the counter; a failed reservation does not use one up.
	if err := db.DeleteWorkspace(ctx, "w4"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ReserveAndInsert(ctx, Workspace{ID: "w6", UserID: "u", ServerID: "a"}, Credentials{}, Limits{MaxWorkspaces: 2}); !errors.Is(err, ErrInsufficientCapacity) {
		t.Fatalf("ReserveAndInsert over max: got %v, want ErrInsufficientCapacity", err)
	}
	got := mustReserve(t, db, Workspace{ID: "w7", UserID: "u", ServerID: "a"}, Limits{})
	if got.Epoch != 4 {
		t.Errorf("after a delete and a refusal: got epoch %d, want 4", got.Epoch)
	}
	s, err := db.GetServer(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if s.PlacementEpoch != 4 {
		t.Errorf("server PlacementEpoch: got %d, want 4", s.PlacementEpoch)
	}
}

// raceReserve has n goroutines each try to reserve one workspace on server
// "s" through the given handles (round robin) and returns how many succeeded
// and the epochs they got. Every failure must be ErrInsufficientCapacity.
func raceReserve(t *testing.T, handles []*DB, n int, req fleet.Resources, l Limits) (int, []int64) {
	t.Helper()
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make([]error, n)
		success int
	)
	for i := range n {
		wg.Go(func() {
			<-start
			db := handles[i%len(handles)]
			_, errs[i] = db.ReserveAndInsert(ctx, Workspace{ID: fmt.Sprintf("w%02d", i), UserID: "u", ServerID: "s",
				Reservation: req}, Credentials{}, l)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		switch {
		case err == nil:
			success++
		case !errors.Is(err, ErrInsufficientCapacity):
			t.Errorf("goroutine %d: got %v, want nil or ErrInsufficientCapacity", i, err)
		}
	}
	list, err := handles[0].ListWorkspaces(ctx, WorkspaceFilter{ServerID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	var epochs []int64
	for _, w := range list {
		epochs = append(epochs, w.Epoch)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	return success, epochs
}

func TestConcurrentReservationsNeverOvercommit(t *testing.T) {
	// Room for 20: each limit alone allows exactly 20 of the requests.
	req := fleet.Resources{CPU: 0.5, MemoryMB: 1024, DiskGB: 10, BandwidthMbps: 50}
	tests := []struct {
		name    string
		limits  Limits
		handles int // DB handles on the same file (2 = two processes)
	}{
		{"cpu", Limits{CPU: 10}, 1},
		{"memory", Limits{MemoryMB: 20 * 1024}, 1},
		{"max workspaces", Limits{MaxWorkspaces: 20}, 1},
		{"all limits at once", Limits{CPU: 10, MemoryMB: 20 * 1024, DiskGB: 200, BandwidthMbps: 1000, MaxWorkspaces: 20}, 1},
		{"two handles on one file", Limits{CPU: 10}, 2},
	}
	wantEpochs := make([]int64, 20)
	for i := range wantEpochs {
		wantEpochs[i] = int64(i + 1)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.handles > 1 {
				localOnly(t)
			}
			db, path := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "s"})
			handles := []*DB{db}
			for range tt.handles - 1 {
				h, err := Open(context.Background(), path, hclog.NewNullLogger())
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				handles = append(handles, h)
			}
			got, epochs := raceReserve(t, handles, 50, req, tt.limits)
			if got != 20 {
				t.Errorf("successful reservations: got %d, want 20", got)
			}
			if diff := cmp.Diff(wantEpochs, epochs); diff != "" {
				t.Errorf("epochs (-want +got):\n%s", diff)
			}
			usage, err := db.ServerUsage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := Usage{Reserved: fleet.Resources{CPU: 10, MemoryMB: 20 * 1024, DiskGB: 200, BandwidthMbps: 1000}, Workspaces: 20}
			if diff := cmp.Diff(want, usage["s"]); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMoveWorkspace(t *testing.T) {
	ctx := context.Background()
	req := fleet.Resources{CPU: 2, MemoryMB: 2048}
	setup := func(t *testing.T) *DB {
		db, _ := openTestDB(t)
		mustCreateServer(t, db, Server{ID: "old", Hostname: "old.example.net"})
		mustCreateServer(t, db, Server{ID: "new", Hostname: "new.example.net"})
		mustCreateServer(t, db, Server{ID: "drained", State: fleet.StateDraining})
		mustReserve(t, db, Workspace{ID: "other", UserID: "u", ServerID: "new", Reservation: req}, Limits{})
		mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "old", Reservation: req}, Limits{})
		if _, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error {
			w.Status, w.ContainerID = fleet.StatusRunning, "c0ffee"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return db
	}

	t.Run("moves reservation, epoch, host", func(t *testing.T) {
		db := setup(t)
		got, err := db.MoveWorkspace(ctx, "w", "new", Limits{CPU: 4, MemoryMB: 4096})
		if err != nil {
			t.Fatalf("MoveWorkspace: %v", err)
		}
		stored, err := db.GetWorkspace(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(stored, got, cmpOpts...); diff != "" {
			t.Errorf("returned vs stored (-stored +returned):\n%s", diff)
		}
		if got.ServerID != "new" || got.Host != "new.example.net" || got.Epoch != 2 ||
			got.ContainerID != "" || got.Status != fleet.StatusCreating || got.Reservation != req {
			t.Errorf("moved row: got server %q host %q epoch %d container %q status %q reservation %+v",
				got.ServerID, got.Host, got.Epoch, got.ContainerID, got.Status, got.Reservation)
		}
		usage, err := db.ServerUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]Usage{
			"old":     {},
			"new":     {Reserved: fleet.Resources{CPU: 4, MemoryMB: 4096}, Workspaces: 2},
			"drained": {},
		}
		if diff := cmp.Diff(want, usage); diff != "" {
			t.Errorf("usage (-want +got):\n%s", diff)
		}
	})

	errTests := []struct {
		name    string
		to      string
		limits  Limits
		id      string
		wantErr error
	}{
		{"target full", "new", Limits{CPU: 3.5}, "w", ErrInsufficientCapacity},
		{"target at max workspaces", "new", Limits{MaxWorkspaces: 1}, "w", ErrInsufficientCapacity},
		{"target draining", "drained", Limits{}, "w", ErrServerNotActive},
		{"target unknown", "ghost", Limits{}, "w", ErrNotFound},
		{"workspace unknown", "new", Limits{}, "ghost", ErrNotFound},
		{"no target", "", Limits{}, "w", ErrInvalid},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			db := setup(t)
			before, err := db.GetWorkspace(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.MoveWorkspace(ctx, tt.id, tt.to, tt.limits); !errors.Is(err, tt.wantErr) {
				t.Fatalf("MoveWorkspace: got %v, want %v", err, tt.wantErr)
			}
			after, err := db.GetWorkspace(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after, cmpOpts...); diff != "" {
				t.Errorf("a refused move changed the row (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("same server counts itself once", func(t *testing.T) {
		db := setup(t)
		got, err := db.MoveWorkspace(ctx, "w", "old", Limits{CPU: 2, MaxWorkspaces: 1})
		if err != nil {
			t.Fatalf("MoveWorkspace to its own server: %v", err)
		}
		if got.Epoch != 2 {
			t.Errorf("Epoch: got %d, want 2", got.Epoch)
		}
	})
}

func TestResizeWorkspace(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		res     fleet.Resources
		limits  Limits
		wantErr error
	}{
		{name: "grow within limits", res: fleet.Resources{CPU: 4, MemoryMB: 8192}, limits: Limits{CPU: 6, MemoryMB: 12288}},
		{name: "grow past cpu", res: fleet.Resources{CPU: 5, MemoryMB: 4096}, limits: Limits{CPU: 6}, wantErr: ErrInsufficientCapacity},
		// The admin shrank the server below what is reserved: shrinking still works,
		// and the workspace count is not a reason to refuse.
		{name: "shrink on an overfull server", res: fleet.Resources{CPU: 1, MemoryMB: 1024},
			limits: Limits{CPU: 1, MemoryMB: 1024, MaxWorkspaces: 1}},
		{name: "negative", res: fleet.Resources{CPU: -1}, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "s"})
			mustReserve(t, db, Workspace{ID: "a", UserID: "u", ServerID: "s", Reservation: fleet.Resources{CPU: 2, MemoryMB: 4096}}, Limits{})
			mustReserve(t, db, Workspace{ID: "b", UserID: "u", ServerID: "s", Reservation: fleet.Resources{CPU: 2, MemoryMB: 4096}}, Limits{})
			got, err := db.ResizeWorkspace(ctx, "b", tt.res, tt.limits)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ResizeWorkspace: got %v, want %v", err, tt.wantErr)
			}
			want := fleet.Resources{CPU: 2, MemoryMB: 4096}
			if err == nil {
				want = tt.res
				if got.Reservation != want || got.Epoch != 2 {
					t.Errorf("returned: got %+v epoch %d, want %+v epoch 2", got.Reservation, got.Epoch, want)
				}
			}
			stored, err := db.GetWorkspace(ctx, "b")
			if err != nil {
				t.Fatal(err)
			}
			if stored.Reservation != want {
				t.Errorf("stored reservation: got %+v, want %+v", stored.Reservation, want)
			}
		})
	}
}

func TestServerUsage(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "a"})
	mustCreateServer(t, db, Server{ID: "b"})
	mustCreateServer(t, db, Server{ID: "empty"})
	for i, r := range []struct {
		server string
		res    fleet.Resources
		status fleet.Status
	}{
		{"a", fleet.Resources{CPU: 1, MemoryMB: 1024, DiskGB: 10, BandwidthMbps: 10, GPUCount: 1}, fleet.StatusRunning},
		{"a", fleet.Resources{CPU: 0.5, MemoryMB: 512, DiskGB: 5, BandwidthMbps: 5}, fleet.StatusStopped},
		{"b", fleet.Resources{CPU: 4, MemoryMB: 8192}, fleet.StatusError},
	} {
		id := fmt.Sprintf("w%d", i)
		mustReserve(t, db, Workspace{ID: id, UserID: "u", ServerID: r.server, Reservation: r.res}, Limits{})
		if _, err := db.SetWorkspaceStatus(ctx, id, r.status, ""); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ServerUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Stopped and failed workspaces keep their reservations.
	want := map[string]Usage{
		"a":     {Reserved: fleet.Resources{CPU: 1.5, MemoryMB: 1536, DiskGB: 15, BandwidthMbps: 15, GPUCount: 1}, Workspaces: 2},
		"b":     {Reserved: fleet.Resources{CPU: 4, MemoryMB: 8192}, Workspaces: 1},
		"empty": {},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ServerUsage (-want +got):\n%s", diff)
	}

	// Deleting a row releases its reservation.
	if err := db.DeleteWorkspace(ctx, "w0"); err != nil {
		t.Fatal(err)
	}
	got, err = db.ServerUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantA := Usage{Reserved: fleet.Resources{CPU: 0.5, MemoryMB: 512, DiskGB: 5, BandwidthMbps: 5}, Workspaces: 1}
	if diff := cmp.Diff(wantA, got["a"]); diff != "" {
		t.Errorf("usage of a after delete (-want +got):\n%s", diff)
	}
}

// BenchmarkReserveAndInsert measures sequential durable placements. The
// reserved sum is recomputed from the rows of the server on every call, so the
// cost grows with the rows per server: "servers=100" spreads the inserts like
// a fleet (tens of rows per server), "servers=1" piles all of them on one.
func BenchmarkReserveAndInsert(b *testing.B) {
	for _, servers := range []int{100, 1} {
		b.Run(fmt.Sprintf("servers=%d", servers), func(b *testing.B) {
			db, _ := openTestDB(b)
			ctx := context.Background()
			for i := range servers {
				mustCreateServer(b, db, Server{ID: fmt.Sprintf("s%03d", i)})
			}
			req := fleet.Resources{CPU: 0.001, MemoryMB: 1}
			limits := Limits{CPU: 1e9, MemoryMB: 1 << 40, MaxWorkspaces: 1 << 30}
			i := 0
			for b.Loop() {
				ws := Workspace{ID: fmt.Sprintf("w%09d", i), UserID: "u", SessionID: "s",
					ServerID: fmt.Sprintf("s%03d", i%servers), Reservation: req,
					Environment: map[string]string{"A": "b"}, Repositories: []string{"https://example.com/r.git"}}
				if _, err := db.ReserveAndInsert(ctx, ws, Credentials{}, limits); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "inserts/s")
		})
	}
}

// BenchmarkDurableCommit is the baseline for BenchmarkReserveAndInsert: the
// cheapest durable write, one row in one transaction, on the same file
// system. The ratio of the two is the cost of the reservation logic.
func BenchmarkDurableCommit(b *testing.B) {
	db, _ := openTestDB(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := db.AddEvent(ctx, Event{Kind: "bench"}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "commits/s")
}
