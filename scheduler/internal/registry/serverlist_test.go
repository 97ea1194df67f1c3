package registry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
)

func TestListServerAddrs(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	if got, err := db.ListServerAddrs(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty registry: got %v, %v; want none", got, err)
	}
	mustCreateServer(t, db, Server{ID: "ws-2", Hostname: "two", IPAddress: "10.0.0.2", AgentPort: 7443, Labels: map[string]string{"a": "b"}})
	mustCreateServer(t, db, Server{ID: "ws-1", Hostname: "one.example", AgentPort: 7444})
	got, err := db.ListServerAddrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ServerAddr{
		{ID: "ws-2", Hostname: "two", IPAddress: "10.0.0.2", AgentPort: 7443},
		{ID: "ws-1", Hostname: "one.example", AgentPort: 7444},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListServerAddrs (-want +got), in registration order:\n%s", diff)
	}
	full, err := db.ListServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range full {
		a := got[i].Server()
		if a.ID != s.ID || a.Hostname != s.Hostname || a.IPAddress != s.IPAddress || a.AgentPort != s.AgentPort {
			t.Errorf("Server() of %s = %+v, want the address fields of ListServers' row", s.ID, a)
		}
	}
}

func TestServerHealths(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	if got, err := db.ServerHealths(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty registry: got %v, %v; want none", got, err)
	}
	mustCreateServer(t, db, Server{ID: "ws-1", Hostname: "one"})
	mustCreateServer(t, db, Server{ID: "ws-2", Hostname: "two"})
	if _, err := db.SetServerHealth(ctx, "ws-2", fleet.HealthUnreachable, "dial refused", time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := db.ServerHealths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full, err := db.ListServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]fleet.Health{}
	for _, s := range full {
		want[s.ID] = s.Health
	}
	if want["ws-2"] != fleet.HealthUnreachable {
		t.Fatalf("ListServers says ws-2 is %q, want unreachable", want["ws-2"])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ServerHealths (-ListServers' health +got):\n%s", diff)
	}
}

// BenchmarkListServers reads 10,000 servers (each with three labels) whole,
// as the health and event loops did every second or two, and only their
// ids and addresses, as they do now.
func BenchmarkListServers(b *testing.B) {
	db, _ := openTestDB(b)
	ctx := context.Background()
	const n = 10000
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 { // concurrent creates share commits
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if _, err := db.CreateServer(ctx, Server{ID: fmt.Sprintf("ws-%05d", i), Hostname: fmt.Sprintf("h%d", i),
					IPAddress: "10.0.0.1", AgentPort: 7443, Region: "eu-central",
					Labels: map[string]string{"disk": "nvme", "zone": "fsn1", "rack": "r12"}}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	b.Run("full_rows", func(b *testing.B) {
		for b.Loop() {
			if s, err := db.ListServers(ctx); err != nil || len(s) != n {
				b.Fatal(len(s), err)
			}
		}
	})
	b.Run("addresses", func(b *testing.B) {
		for b.Loop() {
			if s, err := db.ListServerAddrs(ctx); err != nil || len(s) != n {
				b.Fatal(len(s), err)
			}
		}
	})
}
