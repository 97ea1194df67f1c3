package admin

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/auth"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/gossip"
	"berth/shared/httpbudget"
)

// CookieName holds the panel's session id (session.go), never the admin
// token.
const CookieName = "berth_admin"

// Registry is the part of the registry the admin API reads and writes.
type Registry interface {
	CreateServer(ctx context.Context, s registry.Server) (registry.Server, error)
	GetServer(ctx context.Context, id string) (registry.Server, error)
	ListServers(ctx context.Context) ([]registry.Server, error)
	UpdateServer(ctx context.Context, id string, patch registry.ServerPatch) (registry.Server, error)
	DeleteServer(ctx context.Context, id string) error
	// ListWorkspaces is only ever called with a Limit: the admin views page
	// through workspaces and never load them all.
	ListWorkspaces(ctx context.Context, f registry.WorkspaceFilter) ([]registry.Workspace, error)
	CountWorkspaces(ctx context.Context, f registry.WorkspaceFilter) (int, error)
	CountByStatus(ctx context.Context) (map[fleet.Status]int, error)
	ListEvents(ctx context.Context, f registry.EventFilter) ([]registry.Event, error)
	ListHomes(ctx context.Context, f registry.HomeFilter) ([]registry.Home, error)
}

// Fleet is the orchestrator as the admin API uses it: the snapshot
// placement works on, placement dry runs, and the eviction of a server's
// workspaces before it is removed.
type Fleet interface {
	Snapshot(ctx context.Context) (orchestrator.Snapshot, error)
	Request(cfg orchestrator.WorkspaceConfig) (placement.Request, tiers.Spec)
	Explain(ctx context.Context, cfg orchestrator.WorkspaceConfig) (placement.Decision, error)
	EvictServer(ctx context.Context, serverID string, force bool) (int, error)
	// IdleStopAt is when a running workspace is stopped if unused meanwhile.
	IdleStopAt(ws registry.Workspace) (time.Time, bool)
}

// Agents gives the mTLS client of a server's agent: Client for registered
// servers (cached, one connection pool each), Probe for an address that is
// only checked (not cached: nothing is held per address).
type Agents interface {
	Client(serverID, addr string) *agentclient.Client
	Probe(serverID, addr string) *agentclient.Client
}

// Members is the gossip view.
type Members interface {
	Members() []gossip.Member
	// Subscribe returns a channel of membership events, closed when the
	// pool shuts down.
	Subscribe() <-chan gossip.Event
}

// Deps are what the admin API reads and drives.
type Deps struct {
	Token        string // BERTH_ADMIN_TOKEN; "" fails closed (500)
	ServiceToken string // INTERNAL_SERVICE_TOKEN, for the podex /servers routes
	Registry     Registry
	Fleet        Fleet
	Agents       Agents
	Members      Members // nil when gossip is off
	Billing      Billing // nil when billing is off (no podex API)
	// Raft is this scheduler's view of the raft cluster (any JSON value);
	// nil for a scheduler without raft. RaftAdd and RaftRemove change its
	// members (on the leader).
	Raft       func() (any, error)
	RaftAdd    func(id, addr string) error
	RaftRemove func(id string) error
	Log        hclog.Logger

	// ServiceTokenNext (INTERNAL_SERVICE_TOKEN_NEXT) is accepted as well
	// during a rotation; "": none.
	ServiceTokenNext string

	// The panel's sessions (session.go): they end SessionTTL after sign-in
	// or after SessionIdle unused (0: the defaults, 12h and 1h).
	SessionTTL, SessionIdle time.Duration
	// SecureCookie marks the session cookie Secure on plain HTTP too, for a
	// scheduler behind a TLS front (BERTH_ADMIN_SECURE_COOKIE). Over TLS it
	// is Secure anyway.
	SecureCookie bool
	// HTTP are the server's connection budgets: the panel's event stream
	// is taken off the whole-request write timeout and bounded per write by
	// HTTP.Stall instead. Zero: the stream is left as the server has it.
	HTTP httpbudget.Timeouts
}

// API is the admin API, the admin panel and the podex /servers routes. Safe
// for concurrent use.
type API struct {
	d           Deps
	log         hclog.Logger
	sessions    *sessions
	signinLimit *signinLimiter // failed sign-ins per client address (signin.go)

	// changes wakes the panel's event streams when gossip or an admin write
	// changed something. The gossip subscription is made once, by the first
	// stream, and lives until the pool closes its channel.
	changes   broadcast
	subscribe sync.Once

	// closing is closed when the http.Server serving the panel shuts down,
	// so open event streams end at once instead of holding the shutdown to
	// its deadline. hook registers that with the server, once.
	closing   chan struct{}
	hook      sync.Once
	closeOnce sync.Once
}

// New builds the admin API.
func New(d Deps) *API {
	log := d.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &API{d: d, log: log, closing: make(chan struct{}), sessions: newSessions(d.SessionTTL, d.SessionIdle),
		signinLimit: newSigninLimiter()}
}

// Register mounts every route on e: RegisterAdmin and RegisterService.
// Middleware is per route (never a group), so unknown paths stay the
// framework's plain 404. e should use computeapi.ErrorHandler.
func (a *API) Register(e *echo.Echo) {
	a.RegisterAdmin(e)
	a.RegisterService(e)
}

// RegisterAdmin mounts the admin API and the panel (everything under
// /admin), for a listener of their own (BERTH_ADMIN_LISTEN) or beside the
// compute API.
func (a *API) RegisterAdmin(e *echo.Echo) {
	admin := func(method, path string, h echo.HandlerFunc) {
		e.Add(method, path, a.handle(h), a.requireToken)
	}
	admin(http.MethodGet, "/admin/members", a.members)
	admin(http.MethodGet, "/admin/servers", a.listServers)
	admin(http.MethodPost, "/admin/servers", a.createServer)
	admin(http.MethodGet, "/admin/servers/:id", a.getServer)
	admin(http.MethodPatch, "/admin/servers/:id", a.patchServer)
	admin(http.MethodDelete, "/admin/servers/:id", a.deleteServer)
	admin(http.MethodGet, "/admin/servers/:id/stats", a.serverStats)
	admin(http.MethodGet, "/admin/servers/:id/workspaces", a.serverWorkspaces)
	admin(http.MethodGet, "/admin/cluster", a.cluster)
	admin(http.MethodGet, "/admin/cluster/raft", a.raft)
	admin(http.MethodPost, "/admin/cluster/raft/members", a.raftAdd)
	admin(http.MethodDelete, "/admin/cluster/raft/members/:id", a.raftRemove)
	admin(http.MethodGet, "/admin/events", a.events)
	admin(http.MethodGet, "/admin/homes", a.homes)
	admin(http.MethodGet, "/admin/billing", a.billing)
	admin(http.MethodPost, "/admin/placements/explain", a.explain)

	a.registerPanel(e)
}

// RegisterService mounts the podex API's server-management routes
// (contract §4), which sit with the compute API under the service token.
func (a *API) RegisterService(e *echo.Echo) {
	service := func(method, path string, h echo.HandlerFunc) {
		e.Add(method, path, a.handle(h), a.requireServiceToken)
	}
	service(http.MethodPost, "/servers/test-connection", a.testConnection)
	service(http.MethodGet, "/servers/:id/images", a.images)
	service(http.MethodPost, "/servers/:id/images/pull", a.pullImage)
}

// caller is how an admin request authenticated: with the admin token (a
// bearer token or X-Admin-Token: an API client, no CSRF check), or with a
// panel session cookie (sessionID set).
type caller struct {
	sessionID string
	session   session
}

// headerToken is the admin token a request carries in a header: a bearer
// token, else X-Admin-Token.
func headerToken(r *http.Request) string {
	if token, ok := auth.Bearer(r.Header.Get("Authorization")); ok {
		return token
	}
	return r.Header.Get("X-Admin-Token")
}

// authenticate checks the admin token of the headers (in constant time) or,
// without one, the session of the cookie. touch counts the request as use of
// the session (idle expiry).
func (a *API) authenticate(r *http.Request, touch bool) (caller, error) {
	if a.d.Token == "" {
		return caller{}, errAdminNotConfigured
	}
	if token := headerToken(r); token != "" {
		if !auth.Equal(token, a.d.Token) {
			return caller{}, errInvalidAdminToken
		}
		return caller{}, nil
	}
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return caller{}, errMissingAdminToken
	}
	s, ok := a.sessions.lookup(ck.Value, touch)
	if !ok {
		return caller{}, errSessionEnded
	}
	return caller{sessionID: ck.Value, session: s}, nil
}

// callerKey is where requireToken leaves the caller in the echo context.
const callerKey = "berth.admin.caller"

// requireToken lets through requests with the admin token, and requests
// with a live panel session that, when they change state, pass the CSRF
// check (csrf.go).
func (a *API) requireToken(next echo.HandlerFunc) echo.HandlerFunc { return a.requireAuth(true, next) }

// requireAuth is requireToken; touch=false for the event stream, which
// does not keep an idle session alive.
func (a *API) requireAuth(touch bool, next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		who, err := a.authenticate(r, touch)
		if err != nil {
			return err
		}
		if who.sessionID != "" && !safeMethod(r.Method) {
			if err := checkCSRF(r, who.session, ""); err != nil {
				a.log.Warn("admin request refused by the CSRF check", "method", r.Method, "path", r.URL.Path, "error", err)
				return err
			}
		}
		c.Set(callerKey, who)
		return next(c)
	}
}

// requireServiceToken is the compute API's check (contract §1.2).
func (a *API) requireServiceToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if f := auth.ServiceToken(c.Request(), a.d.ServiceToken, a.d.ServiceTokenNext); f != nil {
			return echo.NewHTTPError(f.Status, f.Detail)
		}
		return next(c)
	}
}

func (a *API) members(c echo.Context) error {
	if a.d.Members == nil {
		return c.JSON(http.StatusOK, []gossip.Member{})
	}
	return c.JSON(http.StatusOK, a.d.Members.Members())
}

// broadcast tells every subscriber that something changed. A subscriber's
// channel holds one pending notice, so a change that comes while the
// subscriber is busy is not lost, and a burst of changes is one notice. The
// zero value is ready to use.
type broadcast struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// subscribe returns the notice channel and the func that ends the
// subscription.
func (b *broadcast) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[chan struct{}]struct{}{}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, ch)
	}
}

func (b *broadcast) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default: // a notice is already pending
		}
	}
}

// hookShutdown makes the shutdown of the http.Server that serves r end
// the open event streams.
func (a *API) hookShutdown(r *http.Request) {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	a.hook.Do(func() {
		srv.RegisterOnShutdown(func() { a.closeOnce.Do(func() { close(a.closing) }) })
	})
}

// watchGossip turns gossip events into change signals. It is started once,
// by the first panel stream, and returns when the pool closes the channel.
func (a *API) watchGossip() {
	if a.d.Members == nil {
		return
	}
	a.subscribe.Do(func() {
		events := a.d.Members.Subscribe()
		go func() {
			for range events {
				a.changes.signal()
			}
		}()
	})
}
