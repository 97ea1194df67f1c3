package admin

import (
	"net/http"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/auth"
	"berth/shared/gossip"
)

// CookieName holds the admin token in the panel's browser session.
const CookieName = "berth_admin"

// Members is the gossip view the admin API shows.
type Members interface {
	Members() []gossip.Member
}

// Deps are what the admin API reads and drives.
type Deps struct {
	Token   string
	Members Members // nil when gossip is off
	Log     hclog.Logger
}

// API is the admin API. Safe for concurrent use.
type API struct {
	d Deps
}

// New builds the admin API.
func New(d Deps) *API { return &API{d: d} }

// Register mounts the routes on e under /admin.
func (a *API) Register(e *echo.Echo) {
	g := e.Group("/admin", a.requireToken)
	g.GET("/members", a.members)
}

// requireToken accepts the admin token as a bearer token, an X-Admin-Token
// header, or the panel's session cookie.
func (a *API) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		token, ok := auth.Bearer(r.Header.Get("Authorization"))
		if !ok {
			token = r.Header.Get("X-Admin-Token")
		}
		if token == "" {
			if ck, err := r.Cookie(CookieName); err == nil {
				token = ck.Value
			}
		}
		switch {
		case a.d.Token == "":
			return echo.NewHTTPError(http.StatusInternalServerError, "Admin authentication not configured")
		case token == "":
			return echo.NewHTTPError(http.StatusUnauthorized, "Missing admin token")
		case !auth.Equal(token, a.d.Token):
			return echo.NewHTTPError(http.StatusUnauthorized, "Invalid admin token")
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
