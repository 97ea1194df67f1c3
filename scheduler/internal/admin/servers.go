package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

// DefaultAgentPort is the agent's mTLS port when a new server names none.
const DefaultAgentPort = 7443

// maxBody caps the admin API's request bodies.
const maxBody = 1 << 20

// serverIDPattern is the agent's rule for server ids (BERTH_SERVER_ID): the
// id is also the DNS name its certificate must carry.
var serverIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// CreateServerRequest is the body of POST /admin/servers. With
// FromDiscovered, the server is built from what that agent gossips (address,
// region, labels, architecture); fields given next to it win.
type CreateServerRequest struct {
	FromDiscovered string `json:"from_discovered,omitempty"`

	ID           string `json:"id,omitempty"`
	Name         string `json:"name,omitempty"`       // default: the id
	Hostname     string `json:"hostname,omitempty"`   // default: ip_address
	IPAddress    string `json:"ip_address,omitempty"` // host name or IP of the agent; required
	AgentPort    int    `json:"agent_port,omitempty"` // default 7443
	Architecture string `json:"architecture,omitempty"`
	Region       string `json:"region,omitempty"`
	// Labels: nil (absent) takes a discovered agent's gossiped labels, {}
	// sets none; no omitempty, so a Go client keeps the difference.
	Labels map[string]string `json:"labels"`

	TotalCPU           float64 `json:"total_cpu,omitempty"`
	TotalMemoryMB      int64   `json:"total_memory_mb,omitempty"`
	TotalDiskGB        int64   `json:"total_disk_gb,omitempty"`
	TotalBandwidthMbps int64   `json:"total_bandwidth_mbps,omitempty"`
	MaxWorkspaces      int     `json:"max_workspaces,omitempty"`
	GPUType            string  `json:"gpu_type,omitempty"`
	GPUCount           int     `json:"gpu_count,omitempty"`

	WorkspaceImage      string `json:"workspace_image,omitempty"`
	WorkspaceImageARM64 string `json:"workspace_image_arm64,omitempty"`
	WorkspaceImageAMD64 string `json:"workspace_image_amd64,omitempty"`
	WorkspaceImageGPU   string `json:"workspace_image_gpu,omitempty"`

	State string `json:"state,omitempty"` // default active
}

// ServerPatch is the body of PATCH /admin/servers/{id}; absent (or null)
// fields are left alone. Capacity overrides of 0 mean "use what the agent
// measures".
type ServerPatch struct {
	Labels             *map[string]string `json:"labels,omitempty"`
	TotalCPU           *float64           `json:"total_cpu,omitempty"`
	TotalMemoryMB      *int64             `json:"total_memory_mb,omitempty"`
	TotalDiskGB        *int64             `json:"total_disk_gb,omitempty"`
	TotalBandwidthMbps *int64             `json:"total_bandwidth_mbps,omitempty"`
	MaxWorkspaces      *int               `json:"max_workspaces,omitempty"`
	State              *string            `json:"state,omitempty"`
}

func (a *API) listServers(c echo.Context) error {
	f, err := a.readFleet(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ServerList{Servers: f.servers(), Discovered: f.discovered()})
}

// serverView reads one server as the API shows it.
func (a *API) serverView(ctx context.Context, id string) (Server, error) {
	f, err := a.readFleet(ctx)
	if err != nil {
		return Server{}, err
	}
	s, ok := f.server(id)
	if !ok {
		return Server{}, failf(ErrNotFound, "server %q not found", id)
	}
	return s, nil
}

func (a *API) getServer(c echo.Context) error {
	s, err := a.serverView(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

func (a *API) createServer(c echo.Context) error {
	ctx := c.Request().Context()
	var req CreateServerRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.FromDiscovered != "" {
		if err := a.fillFromGossip(&req); err != nil {
			return err
		}
	}
	s, err := newServer(req)
	if err != nil {
		return err
	}
	if err := a.checkUnique(ctx, s); err != nil {
		return err
	}
	capa, err := a.checkAgent(ctx, s.ID, net.JoinHostPort(s.IPAddress, strconv.Itoa(s.AgentPort)))
	if err != nil {
		return err
	}
	if s.Architecture == "" {
		s.Architecture = capa.Architecture
	}
	if _, err := a.d.Registry.CreateServer(ctx, s); err != nil {
		if errors.Is(err, registry.ErrConflict) {
			return failf(ErrConflict, "server id %q or name %q is already registered", s.ID, s.Name)
		}
		return err
	}
	a.log.Info("server added", "server", s.ID, "address", s.IPAddress, "port", s.AgentPort)
	a.changes.signal()
	view, err := a.serverView(ctx, s.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, view)
}

// fillFromGossip completes req from the agent it names in FromDiscovered.
func (a *API) fillFromGossip(req *CreateServerRequest) error {
	id := req.FromDiscovered
	var found *gossip.Member
	if a.d.Members != nil {
		for _, m := range a.d.Members.Members() {
			if m.Name == id && m.Meta.Role == wire.NodeRoleAgent && live(m) {
				found = &m
				break
			}
		}
	}
	if found == nil {
		return failf(ErrNotFound, "no live agent %q in gossip to add", id)
	}
	if req.ID != "" && req.ID != id {
		return failf(ErrInvalid, "id %q differs from from_discovered %q: the id must be the agent's own", req.ID, id)
	}
	req.ID = id
	host, port, err := net.SplitHostPort(found.Meta.AgentAddr)
	if err != nil {
		return failf(ErrInvalid, "agent %q gossips no usable API address (%q): add it with ip_address and agent_port", id, found.Meta.AgentAddr)
	}
	if req.IPAddress == "" {
		req.IPAddress = host
		if req.AgentPort == 0 {
			req.AgentPort, _ = strconv.Atoi(port)
		}
	}
	if req.Hostname == "" {
		req.Hostname = host
	}
	if req.Region == "" {
		req.Region = found.Meta.Region
	}
	if req.Labels == nil {
		req.Labels = found.Meta.Labels
	}
	if req.Architecture == "" {
		req.Architecture = found.Meta.Architecture
	}
	return nil
}

// newServer validates a create request and turns it into a registry row.
func newServer(req CreateServerRequest) (registry.Server, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	switch {
	case req.ID == "":
		add("id is required")
	case !serverIDPattern.MatchString(req.ID):
		add("id %q: want 1-63 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit (the agent's BERTH_SERVER_ID)", req.ID)
	}
	if req.IPAddress == "" {
		req.IPAddress = req.Hostname
	}
	if req.IPAddress == "" {
		add("ip_address is required: the host name or IP address the scheduler reaches the agent at")
	} else if strings.ContainsAny(req.IPAddress, " /") || strings.Count(req.IPAddress, ":") == 1 {
		add("ip_address %q: want a host name or IP address without port or scheme (give the port as agent_port)", req.IPAddress)
	}
	if req.AgentPort == 0 {
		req.AgentPort = DefaultAgentPort
	}
	if req.AgentPort < 1 || req.AgentPort > 65535 {
		add("agent_port %d: want 1-65535", req.AgentPort)
	}
	if req.TotalCPU < 0 || req.TotalMemoryMB < 0 || req.TotalDiskGB < 0 || req.TotalBandwidthMbps < 0 ||
		req.MaxWorkspaces < 0 || req.GPUCount < 0 {
		add("capacity and limits must be >= 0 (0 = use what the agent measures, or unlimited)")
	}
	for k := range req.Labels {
		if strings.TrimSpace(k) == "" {
			add("labels: a key is empty")
		}
	}
	state := fleet.StateActive
	if req.State != "" {
		state = fleet.State(req.State)
		if !state.Valid() {
			add("state %q: want active, draining or cordoned", req.State)
		}
	}
	if len(problems) > 0 {
		return registry.Server{}, failf(ErrInvalid, "%s", strings.Join(problems, "; "))
	}
	hostname := req.Hostname
	if hostname == "" {
		hostname = req.IPAddress
	}
	return registry.Server{
		ID: req.ID, Name: req.Name, Hostname: hostname, IPAddress: req.IPAddress, AgentPort: req.AgentPort,
		Architecture: wire.NormalizeArch(req.Architecture), Region: req.Region, Labels: req.Labels,
		TotalCPU: req.TotalCPU, TotalMemoryMB: req.TotalMemoryMB, TotalDiskGB: req.TotalDiskGB,
		TotalBandwidthMbps: req.TotalBandwidthMbps, MaxWorkspaces: req.MaxWorkspaces,
		GPUType: req.GPUType, GPUCount: req.GPUCount,
		WorkspaceImage: req.WorkspaceImage, WorkspaceImageARM64: req.WorkspaceImageARM64,
		WorkspaceImageAMD64: req.WorkspaceImageAMD64, WorkspaceImageGPU: req.WorkspaceImageGPU,
		State: state,
	}, nil
}

// checkUnique refuses an id or name that is taken, before the agent is
// probed (the registry refuses it again on insert, for races).
func (a *API) checkUnique(ctx context.Context, s registry.Server) error {
	servers, err := a.d.Registry.ListServers(ctx)
	if err != nil {
		return err
	}
	name := s.Name
	if name == "" {
		name = s.ID
	}
	for _, o := range servers {
		switch {
		case o.ID == s.ID:
			return failf(ErrConflict, "server %q is already registered", s.ID)
		case o.Name == name:
			return failf(ErrConflict, "server name %q is already taken by server %q", name, o.ID)
		}
	}
	return nil
}

func (a *API) patchServer(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	var p ServerPatch
	if err := decodeJSON(c, &p); err != nil {
		return err
	}
	patch, err := p.registryPatch()
	if err != nil {
		return err
	}
	if _, err := a.d.Registry.UpdateServer(ctx, id, patch); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return failf(ErrNotFound, "server %q not found", id)
		}
		return err
	}
	if p.State != nil {
		a.log.Info("server state set", "server", id, "state", *p.State)
	}
	a.changes.signal()
	view, err := a.serverView(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, view)
}

// registryPatch validates p.
func (p ServerPatch) registryPatch() (registry.ServerPatch, error) {
	var problems []string
	nonNegative := func(name string, v float64) {
		if v < 0 {
			problems = append(problems, fmt.Sprintf("%s %g: want >= 0 (0 = use what the agent measures)", name, v))
		}
	}
	out := registry.ServerPatch{Labels: p.Labels, TotalCPU: p.TotalCPU, TotalMemoryMB: p.TotalMemoryMB,
		TotalDiskGB: p.TotalDiskGB, TotalBandwidthMbps: p.TotalBandwidthMbps, MaxWorkspaces: p.MaxWorkspaces}
	if p.TotalCPU != nil {
		nonNegative("total_cpu", *p.TotalCPU)
	}
	if p.TotalMemoryMB != nil {
		nonNegative("total_memory_mb", float64(*p.TotalMemoryMB))
	}
	if p.TotalDiskGB != nil {
		nonNegative("total_disk_gb", float64(*p.TotalDiskGB))
	}
	if p.TotalBandwidthMbps != nil {
		nonNegative("total_bandwidth_mbps", float64(*p.TotalBandwidthMbps))
	}
	if p.MaxWorkspaces != nil && *p.MaxWorkspaces < 0 {
		problems = append(problems, fmt.Sprintf("max_workspaces %d: want >= 0 (0 = unlimited)", *p.MaxWorkspaces))
	}
	if p.Labels != nil {
		for k := range *p.Labels {
			if strings.TrimSpace(k) == "" {
				problems = append(problems, "labels: a key is empty")
			}
		}
	}
	if p.State != nil {
		st := fleet.State(*p.State)
		if !st.Valid() {
			problems = append(problems, fmt.Sprintf("state %q: want active, draining or cordoned", *p.State))
		}
		out.State = &st
	}
	if len(problems) > 0 {
		return registry.ServerPatch{}, failf(ErrInvalid, "%s", strings.Join(problems, "; "))
	}
	if out == (registry.ServerPatch{}) {
		return registry.ServerPatch{}, failf(ErrInvalid,
			"nothing to change: give one of labels, total_cpu, total_memory_mb, total_disk_gb, total_bandwidth_mbps, max_workspaces, state")
	}
	return out, nil
}

// deleteServer removes a server. A server with workspace rows is refused
// unless ?force=true: then the orchestrator evicts them (the server is
// cordoned, each workspace's container is removed where its agent answers,
// its record dropped, with events and status notifications) and the server
// goes. Data directories are kept.
func (a *API) deleteServer(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	if _, err := a.d.Registry.GetServer(ctx, id); errors.Is(err, registry.ErrNotFound) {
		return failf(ErrNotFound, "server %q not found", id)
	} else if err != nil {
		return err
	}
	var inUse *orchestrator.ServerInUseError
	if _, err := a.d.Fleet.EvictServer(ctx, id, force); errors.As(err, &inUse) {
		return failf(ErrConflict,
			"server %q still has %d %s: drain it (PATCH state=draining) and wait until they are gone, or delete with ?force=true to drop their records and remove their containers (data is kept)",
			id, inUse.Workspaces, plural(inUse.Workspaces, "workspace", "workspaces"))
	} else if err != nil {
		return err
	}
	if err := a.d.Registry.DeleteServer(ctx, id); err != nil {
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return failf(ErrNotFound, "server %q not found", id)
		case errors.Is(err, registry.ErrServerInUse):
			return failf(ErrConflict, "server %q got a new workspace while it was being deleted; try again", id)
		}
		return err
	}
	a.log.Info("server removed", "server", id, "force", force)
	a.changes.signal()
	return c.NoContent(http.StatusNoContent)
}

// serverWorkspaces is GET /admin/servers/{id}/workspaces[?limit=&after=&order=]:
// one page of the server's workspaces (paging.go), the server's total and
// the cursor of the next page.
func (a *API) serverWorkspaces(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	f := registry.WorkspaceFilter{ServerID: id}
	if err := workspacePaging(c, &f); err != nil {
		return err
	}
	if _, err := a.d.Registry.GetServer(ctx, id); errors.Is(err, registry.ErrNotFound) {
		return failf(ErrNotFound, "server %q not found", id)
	} else if err != nil {
		return err
	}
	total, err := a.d.Registry.CountWorkspaces(ctx, registry.WorkspaceFilter{ServerID: id})
	if err != nil {
		return err
	}
	page, next, err := a.workspacePage(ctx, f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, WorkspacePage{ServerID: id, Workspaces: page, TotalCount: total, Next: next})
}

// maxEvents caps GET /admin/events?limit=.
const maxEvents = 1000

func (a *API) events(c echo.Context) error {
	limit := registry.DefaultEventLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEvents {
			return failf(ErrInvalid, "limit %q: want a whole number from 1 to %d", v, maxEvents)
		}
		limit = n
	}
	events, err := a.d.Registry.ListEvents(c.Request().Context(),
		registry.EventFilter{ServerID: c.QueryParam("server_id"), WorkspaceID: c.QueryParam("workspace_id"), Limit: limit})
	if err != nil {
		return err
	}
	out := make([]Event, len(events))
	for i, e := range events {
		out[i] = eventOf(e)
	}
	return c.JSON(http.StatusOK, map[string]any{"events": out})
}

// Home is a workspace's home directory as GET /admin/homes shows it.
type Home struct {
	WorkspaceID string    `json:"workspace_id"`
	UserID      string    `json:"user_id"`
	ServerID    string    `json:"server_id"`           // "" when its server was removed (the data is gone)
	MovingTo    string    `json:"moving_to,omitempty"` // the target of a move under way
	Purge       bool      `json:"purge,omitempty"`     // removal requested
	UpdatedAt   time.Time `json:"updated_at"`
}

// homes is GET /admin/homes[?server_id=&moving=true]: where each workspace's
// home directory lives, including those of deleted workspaces (DELETE keeps
// the data), and the moves under way.
func (a *API) homes(c echo.Context) error {
	moving, _ := strconv.ParseBool(c.QueryParam("moving"))
	hs, err := a.d.Registry.ListHomes(c.Request().Context(), registry.HomeFilter{ServerID: c.QueryParam("server_id"), Moving: moving})
	if err != nil {
		return err
	}
	out := make([]Home, len(hs))
	for i, h := range hs {
		out[i] = Home{WorkspaceID: h.WorkspaceID, UserID: h.UserID, ServerID: h.ServerID, MovingTo: h.MovingTo,
			Purge: h.Purge, UpdatedAt: h.UpdatedAt}
	}
	return c.JSON(http.StatusOK, map[string]any{"homes": out})
}

// limitBody is the request body, bounded to maxBody bytes: reading past it
// fails with an *http.MaxBytesError (tooLarge), never a silent cut.
func limitBody(c echo.Context) io.Reader {
	return http.MaxBytesReader(c.Response(), c.Request().Body, maxBody)
}

// tooLarge is the 413 for a body past maxBody, nil for any other error.
func tooLarge(err error) error {
	var mb *http.MaxBytesError
	if !errors.As(err, &mb) {
		return nil
	}
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("Request body too large: an admin request body carries at most %d bytes", mb.Limit))
}

// decodeJSON reads a JSON object into v, refusing unknown fields, and says
// in plain words what is wrong with a bad body.
func decodeJSON(c echo.Context, v any) error { return decodeBody(c, v, true) }

// decodeBody is decodeJSON, with unknown fields refused only when strict.
func decodeBody(c echo.Context, v any, strict bool) error {
	dec := json.NewDecoder(limitBody(c))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
	case tooLarge(err) != nil:
		return tooLarge(err)
	case errors.Is(err, io.EOF):
		return failf(ErrInvalid, "the request body is empty: want a JSON object")
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return failf(ErrInvalid, "%s: want %s, got a JSON %s", typeErr.Field, kindWord(typeErr.Type), typeErr.Value)
	case errors.As(err, &typeErr):
		return failf(ErrInvalid, "the request body must be a JSON object, not a %s", typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return failf(ErrInvalid, "the request body is not valid JSON: %v", err)
	default: // unknown field (encoding/json has no type for it)
		return failf(ErrInvalid, "the request body is invalid: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	// Nothing after the object but spaces (More does not see a stray '}').
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if tooLarge(err) != nil {
			return tooLarge(err)
		}
		return failf(ErrInvalid, "the request body has data after the JSON object")
	}
	return nil
}

// kindWord names what a Go type accepts, for decodeJSON's messages.
func kindWord(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// boolQuery reads an optional boolean query parameter.
func boolQuery(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, failf(ErrInvalid, "%s=%q: want true or false", name, v)
	}
	return b, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
