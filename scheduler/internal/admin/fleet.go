package admin

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

// maxPanelWorkspaces bounds the workspaces the panel lists per server.
const maxPanelWorkspaces = 100

// panelEvents is how many recent events the panel shows.
const panelEvents = 15

// fleetView is one read of what the admin views show: the placement snapshot
// (registry rows, reservations, gossiped capacity, health) and the gossip
// members.
type fleetView struct {
	snap    orchestrator.Snapshot
	members []gossip.Member
	byName  map[string]gossip.Member
	at      time.Time
}

func (a *API) readFleet(ctx context.Context) (fleetView, error) {
	snap, err := a.d.Fleet.Snapshot(ctx)
	if err != nil {
		return fleetView{}, err
	}
	f := fleetView{snap: snap, byName: map[string]gossip.Member{}, at: time.Now()}
	if a.d.Members != nil {
		f.members = a.d.Members.Members()
	}
	for _, m := range f.members {
		f.byName[m.Name] = m
	}
	return f, nil
}

func (f fleetView) member(id string) *gossip.Member {
	if m, ok := f.byName[id]; ok {
		return &m
	}
	return nil
}

func (f fleetView) servers() []Server {
	out := make([]Server, len(f.snap.Servers))
	for i, s := range f.snap.Servers {
		out[i] = serverOf(s, f.snap.Nodes[i], f.member(s.ID))
	}
	return out
}

func (f fleetView) server(id string) (Server, bool) {
	s, ok := f.snap.Server(id)
	if !ok {
		return Server{}, false
	}
	n, _ := f.snap.Node(id)
	return serverOf(s, n, f.member(id)), true
}

// discovered lists the agents that gossip, are alive or suspect, and are
// not registered.
func (f fleetView) discovered() []Discovered {
	out := []Discovered{}
	for _, m := range f.members {
		if m.Meta.Role != wire.NodeRoleAgent || !live(m) {
			continue
		}
		if _, registered := f.snap.Server(m.Name); registered {
			continue
		}
		out = append(out, discoveredOf(m))
	}
	return out
}

// cluster sums the fleet; byStatus counts the workspace rows of each status
// (registry.CountByStatus).
func (f fleetView) cluster(byStatus map[fleet.Status]int) Cluster {
	c := Cluster{
		Servers:    ClusterServers{ByHealth: map[string]int{}, ByState: map[string]int{}},
		Workspaces: Counts{By: map[string]int{}},
		Members:    Counts{Total: len(f.members), By: map[string]int{}},
		Generated:  timestamp(f.at),
	}
	for _, h := range []fleet.Health{fleet.HealthHealthy, fleet.HealthDegraded, fleet.HealthUnhealthy,
		fleet.HealthUnreachable, fleet.HealthUnknown} {
		c.Servers.ByHealth[string(h)] = 0
	}
	for _, s := range []fleet.State{fleet.StateActive, fleet.StateDraining, fleet.StateCordoned} {
		c.Servers.ByState[string(s)] = 0
	}
	for _, st := range []fleet.Status{fleet.StatusCreating, fleet.StatusRunning, fleet.StatusStopping,
		fleet.StatusStopped, fleet.StatusError, fleet.StatusPendingDeletion} {
		c.Workspaces.By[string(st)] = 0
	}
	var busyCores float64
	for _, s := range f.servers() {
		c.Servers.Total++
		c.Servers.ByHealth[s.Health]++
		c.Servers.ByState[s.State]++
		c.Capacity.Effective = c.Capacity.Effective.plus(s.Effective)
		c.Capacity.Reserved = c.Capacity.Reserved.plus(s.Reserved)
		c.Capacity.Available = c.Capacity.Available.plus(s.Available)
		if s.Use != nil {
			c.Use = c.Use.plus(*s.Use)
			busyCores += s.Use.CPUCores * float64(s.Use.CPUPercent) / 100
		}
		if fleet.Schedulable(fleet.Health(s.Health), fleet.State(s.State)) {
			c.Placement.Schedulable++
		}
	}
	if c.Use.CPUCores > 0 { // the cluster's CPU use, weighted by cores
		c.Use.CPUPercent = int64(100 * busyCores / c.Use.CPUCores)
	}
	for st, n := range byStatus {
		c.Workspaces.By[string(st)] += n
		c.Workspaces.Total += n
	}
	for _, m := range f.members {
		c.Members.By[m.State]++
	}
	return c
}

// overview is everything the panel shows.
func (a *API) overview(ctx context.Context) (Overview, error) {
	f, err := a.readFleet(ctx)
	if err != nil {
		return Overview{}, err
	}
	byStatus, err := a.d.Registry.CountByStatus(ctx)
	if err != nil {
		return Overview{}, err
	}
	events, err := a.d.Registry.ListEvents(ctx, registry.EventFilter{Limit: panelEvents})
	if err != nil {
		return Overview{}, err
	}
	o := Overview{
		Generated: timestamp(f.at), Cluster: a.clusterOf(f, byStatus), Servers: f.servers(),
		Discovered: f.discovered(), Members: make([]Member, len(f.members)),
		Workspaces: map[string][]Workspace{}, WorkspacesNext: map[string]string{}, Events: make([]Event, len(events)),
	}
	for i, m := range f.members {
		o.Members[i] = memberOf(m)
	}
	// Each server's newest page; the panel asks for the others (paging.go).
	for _, s := range o.Servers {
		page, next, err := a.workspacePage(ctx,
			registry.WorkspaceFilter{ServerID: s.ID, Limit: maxPanelWorkspaces, NewestFirst: true})
		if err != nil {
			return Overview{}, err
		}
		o.Workspaces[s.ID] = page
		if next != nil {
			o.WorkspacesNext[s.ID] = *next
		}
	}
	for i, e := range events {
		o.Events[i] = eventOf(e)
	}
	if o.Moves, err = a.moves(ctx); err != nil {
		return Overview{}, err
	}
	if o.Billing, err = a.billingSummary(ctx); err != nil {
		return Overview{}, err
	}
	return o, nil
}

// moves lists the home moves under way with their latest progress event.
func (a *API) moves(ctx context.Context) ([]Move, error) {
	homes, err := a.d.Registry.ListHomes(ctx, registry.HomeFilter{Moving: true})
	if err != nil {
		return nil, err
	}
	out := make([]Move, 0, len(homes))
	for _, h := range homes {
		m := Move{WorkspaceID: h.WorkspaceID, From: h.ServerID, To: h.MovingTo, Progress: "starting",
			Since: h.UpdatedAt.UTC().Format(time.RFC3339)}
		evs, err := a.d.Registry.ListEvents(ctx, registry.EventFilter{WorkspaceID: h.WorkspaceID, Limit: 5})
		if err != nil {
			return nil, err
		}
		for _, e := range evs { // newest first
			if strings.HasPrefix(e.Kind, "home.move.") {
				m.Progress = e.Message
				break
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// cluster is GET /admin/cluster.
func (a *API) cluster(c echo.Context) error {
	ctx := c.Request().Context()
	f, err := a.readFleet(ctx)
	if err != nil {
		return err
	}
	byStatus, err := a.d.Registry.CountByStatus(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.clusterOf(f, byStatus))
}

// clusterOf is the cluster view of /admin/cluster and the panel, with the
// raft view of a scheduler on raft.
func (a *API) clusterOf(f fleetView, byStatus map[fleet.Status]int) Cluster {
	out := f.cluster(byStatus)
	if a.d.Raft != nil {
		v, err := a.d.Raft()
		if err != nil {
			a.d.Log.Warn("raft view", "error", err)
		}
		out.Raft = v
	}
	return out
}

// raft is GET /admin/cluster/raft: the raft view of the scheduler asked
// (served where it arrives, not by the leader); 404 without raft.
func (a *API) raft(c echo.Context) error {
	if a.d.Raft == nil {
		return echo.NewHTTPError(http.StatusNotFound, "this scheduler runs alone, without raft (BERTH_NODE_ID unset)")
	}
	v, err := a.d.Raft()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// RaftMember is the body of POST /admin/cluster/raft/members.
type RaftMember struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // its raft address, host:port; its certificate must name the host
}

// raftAdd is POST /admin/cluster/raft/members: add a scheduler as a voter.
func (a *API) raftAdd(c echo.Context) error {
	if a.d.RaftAdd == nil {
		return echo.NewHTTPError(http.StatusNotFound, "this scheduler runs alone, without raft (BERTH_NODE_ID unset)")
	}
	var m RaftMember
	if err := decodeJSON(c, &m); err != nil {
		return err
	}
	if m.ID == "" || m.Addr == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "id and addr (host:port of its raft port) are required")
	}
	if err := a.d.RaftAdd(m.ID, m.Addr); err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "add "+m.ID+": "+err.Error())
	}
	return c.NoContent(http.StatusNoContent)
}

// raftRemove is DELETE /admin/cluster/raft/members/:id.
func (a *API) raftRemove(c echo.Context) error {
	if a.d.RaftRemove == nil {
		return echo.NewHTTPError(http.StatusNotFound, "this scheduler runs alone, without raft (BERTH_NODE_ID unset)")
	}
	id := c.Param("id")
	if err := a.d.RaftRemove(id); err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "remove "+id+": "+err.Error())
	}
	return c.NoContent(http.StatusNoContent)
}
