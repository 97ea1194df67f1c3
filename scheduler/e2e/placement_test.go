package e2e

import (
	"net/http"
	"testing"
)

// Placement on the real hosts, by a scheduler process each test starts with
// its own registry, strategy and seeded capacities (gossip off, so the
// seeds are the capacity). Each workspace's container must be in its
// server's own dockerd and in no other.

// checkPlaced wants ws's container running in its server's dockerd, under
// this scheduler's cluster label, and absent from the other host.
func checkPlaced(t *testing.T, s *scheduler, ws info) {
	t.Helper()
	for _, h := range hosts {
		got := workspaceContainers(t, h.id, "label=podex.workspace_id="+ws.ID)[ws.ID]
		want := ""
		if h.id == ws.ServerID {
			want = "running"
		}
		if got != want {
			t.Errorf("%s (placed on %s) in %s's dockerd: state %q, want %q", ws.ID, ws.ServerID, h.id, got, want)
		}
	}
	if got := innerDocker(t, ws.ServerID, "inspect", "--format", `{{index .Config.Labels "berth.cluster"}}`, ws.ContainerID); got != s.clusterID {
		t.Errorf("%s: label berth.cluster = %q, want %q (this scheduler's cluster id)", ws.ID, got, s.clusterID)
	}
}

// Two starter workspaces on two equal, roomy hosts: SPREAD puts them on
// different hosts (lowest utilisation), BEST_FIT on the same one (least
// room left), §11.2.
func TestPlacementStrategies(t *testing.T) {
	needCluster(t)
	roomy := seed{CPU: 8, MemoryMB: 16384, DiskGB: 200, Region: "local"}
	cases := []struct {
		strategy string
		sameHost bool
	}{
		{"spread", false},
		{"best_fit", true},
	}
	for _, tc := range cases {
		t.Run(tc.strategy, func(t *testing.T) {
			s := startScheduler(t, tc.strategy, map[string]seed{hosts[0].id: roomy, hosts[1].id: roomy})
			k := s.api.as(uniqueID("e2e-user"))
			session := uniqueID("e2e-sess")
			a := k.mustCreate(t, session, uniqueID("e2e-place"), nil)
			b := k.mustCreate(t, session, uniqueID("e2e-place"), nil)
			if got := a.ServerID == b.ServerID; got != tc.sameHost {
				t.Errorf("%s: first on %s, second on %s; same host = %v, want %v", tc.strategy, a.ServerID, b.ServerID, got, tc.sameHost)
			}
			checkPlaced(t, s, a)
			checkPlaced(t, s, b)
		})
	}
}

// Refusals, §3.1 step 3 and §11.2: a required region with no server, and
// hosts that are full (whatever the region asked for). Each host has room
// for exactly one starter.
func TestPlacementRefusals(t *testing.T) {
	needCluster(t)
	one := seed{CPU: 2, MemoryMB: 4096, DiskGB: 20, Region: "local"}
	s := startScheduler(t, "spread", map[string]seed{hosts[0].id: one, hosts[1].id: one})
	k := s.api.as(uniqueID("e2e-user"))
	session := uniqueID("e2e-sess")

	refuse := func(t *testing.T, region, wantDetail string) {
		t.Helper()
		id := uniqueID("e2e-refused")
		cfg := starter()
		if region != "" {
			cfg["region_preference"] = region
		}
		r := k.create(t, session, id, cfg)
		if r.status != http.StatusServiceUnavailable || r.detail() != wantDetail {
			t.Errorf("create (region %q): got %s, want 503 %q", region, r, wantDetail)
		}
		for _, h := range hosts {
			if got := containerState(t, h.id, id); got != "" {
				t.Errorf("refused create left a %s container on %s", got, h.id)
			}
		}
	}

	t.Run("region with no server", func(t *testing.T) {
		refuse(t, "mars", "No capacity available in mars region")
	})

	// Fill both hosts. (Not in a subtest: the workspaces must outlive it,
	// and each is deleted when the test that created it ends.)
	var placed []info
	for range hosts {
		ws := k.mustCreate(t, session, uniqueID("e2e-fill"), nil)
		checkPlaced(t, s, ws)
		placed = append(placed, ws)
	}
	if placed[0].ServerID == placed[1].ServerID {
		t.Errorf("both on %s, whose room is one starter", placed[0].ServerID)
	}

	cases := []struct{ name, region string }{
		{"everything full", ""},
		{"everything full, region with servers", "local"},
		{"everything full, region without servers", "mars"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refuse(t, tc.region, "No server has sufficient resources")
		})
	}
}
