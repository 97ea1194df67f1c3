package computeapi

import (
	"bytes"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// safeID is the contract's workspace id pattern (§1.2 step 5).
var safeID = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// maxIDLen bounds ids given at create: ids name the container and the data
// directory, so they must stay well inside file-name limits. The contract
// sets no bound; podex sends UUIDs (36).
const maxIDLen = 64

func validateID(id string) error {
	switch {
	case id == "":
		return errEmptyID
	case !safeID.MatchString(id):
		return errUnsafeID
	}
	return nil
}

// owned is the ownership check (§1.2 step 5): id, record, owner. With sync
// the status is refreshed from the container first, which the routes whose
// answer depends on the live status need (get, exec, files, health). A
// failed sync keeps the stored record, as Python did.
func (a *API) owned(c echo.Context, sync bool) (registry.Workspace, error) {
	id := c.Param("id")
	if err := validateID(id); err != nil {
		return registry.Workspace{}, err
	}
	ctx := c.Request().Context()
	ws, err := a.d.Workspaces.Get(ctx, id)
	if err != nil {
		return registry.Workspace{}, a.fail(opLookup, err)
	}
	if ws.UserID != userID(c) {
		return registry.Workspace{}, errForbidden
	}
	if !sync {
		return ws, nil
	}
	synced, err := a.d.Workspaces.Sync(ctx, ws)
	switch {
	case errors.Is(err, orchestrator.ErrNotFound):
		return registry.Workspace{}, errNotFound
	case err != nil:
		a.log.Warn("status sync failed; answering from the record", "workspace_id", id, "error", err)
		return ws, nil
	}
	return synced, nil
}

// create is POST /workspaces (§3.1).
func (a *API) create(c echo.Context) error {
	req, err := decodeCreate(bodyOf(c), userID(c))
	if err != nil {
		return err
	}
	if id := req.WorkspaceID; id != "" {
		if err := validateID(id); err != nil {
			return err
		}
		if len(id) > maxIDLen {
			return errLongID
		}
	}
	ws, err := a.d.Workspaces.Create(c.Request().Context(), req)
	if err != nil {
		return a.fail(opCreate, err)
	}
	return writeJSON(c, http.StatusCreated, infoOf(ws))
}

// decodeCreate validates WorkspaceCreateRequest and its WorkspaceConfig
// (§3.1, §5.1) in the models' field order. Unknown keys are ignored.
func decodeCreate(b requestBody, user string) (orchestrator.CreateRequest, error) {
	var v validator
	body := v.body(b)
	sessionID := body.requiredString("session_id")
	workspaceID := body.nullableString("workspace_id")
	cfg := body.nested("config")

	wc := orchestrator.WorkspaceConfig{Tier: cfg.stringOr("tier", "starter_arm")}
	cfg.stringOr("architecture", "arm64") // the tier decides the architecture
	cfg.nullableString("gpu_type")
	cfg.stringOr("os_version", "ubuntu-22.04")
	for _, f := range []string{"python_version", "node_version", "go_version", "rust_channel"} {
		cfg.nullableString(f)
	}
	for _, f := range []string{"apt_packages", "pip_packages", "npm_packages"} {
		cfg.stringList(f)
	}
	wc.Repos = cfg.stringList("repos")
	wc.Settings.GitBranch = deref(cfg.nullableString("git_branch"))
	wc.GitCredentials = deref(cfg.nullableString("git_credentials"))
	wc.Environment = cfg.stringMap("environment")
	cfg.intOr("storage_gb", 20, between(5, 500))
	if hours := cfg.intOr("timeout_hours", 24, between(1, 168)); cfg.has("timeout_hours") {
		wc.Settings.IdleTimeoutHours = int(hours) // the idle limit (README: idle stop)
	}
	cfg.stringList("pre_init_commands")
	cfg.stringList("post_init_commands")
	cfg.nullableString("template_id")
	wc.Settings.GitName = deref(cfg.nullableString("git_name"))
	wc.Settings.GitEmail = deref(cfg.nullableString("git_email"))
	wc.Settings.BaseImage = deref(cfg.nullableString("base_image"))
	wc.Settings.RegionPreference = deref(cfg.nullableString("region_preference"))
	if err := v.err(); err != nil {
		return orchestrator.CreateRequest{}, err
	}
	return orchestrator.CreateRequest{UserID: user, SessionID: sessionID, WorkspaceID: deref(workspaceID), Config: wc}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// get is GET /workspaces/{id} (§3.2): the synced record.
func (a *API) get(c echo.Context) error {
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, infoOf(ws))
}

// list is GET /workspaces (§3.3): the caller's records, not synced.
func (a *API) list(c echo.Context) error {
	session, _ := query(c, "session_id")
	wss, err := a.d.Workspaces.List(c.Request().Context(), userID(c), session)
	if err != nil {
		return a.fail(opLookup, err)
	}
	out := make([]workspaceInfo, 0, len(wss))
	for _, ws := range wss {
		out = append(out, infoOf(ws))
	}
	return writeJSON(c, http.StatusOK, out)
}

// stop is POST …/stop (§3.4): always 204 after the owner check.
func (a *API) stop(c echo.Context) error {
	ws, err := a.owned(c, false)
	if err != nil {
		return err
	}
	if err := a.d.Workspaces.Stop(c.Request().Context(), ws); err != nil {
		a.log.Warn("stop failed; answering 204 as the contract does", "workspace_id", ws.ID, "error", err)
	}
	return noContent(c)
}

// restart is POST …/restart (§3.5).
func (a *API) restart(c echo.Context) error {
	ws, err := a.owned(c, false)
	if err != nil {
		return err
	}
	if err := a.d.Workspaces.Restart(c.Request().Context(), ws); err != nil {
		return a.fail(opRestart, err)
	}
	return noContent(c)
}

// delete is DELETE /workspaces/{id} (§3.6).
func (a *API) delete(c echo.Context) error {
	ws, err := a.owned(c, false)
	if err != nil {
		return err
	}
	if err := a.d.Workspaces.Delete(c.Request().Context(), ws); err != nil {
		return a.fail(opDelete, err)
	}
	return noContent(c)
}

// markForDeletion is POST …/mark-for-deletion (§3.7).
//
// An id whose record was deleted but whose home directory is kept (DELETE
// keeps it, §3.6) is bound to its owner until the data goes: for it, the
// owner's mark-for-deletion answers the same 202 and the cleanup loop
// removes the home, after which the id is free for anyone.
func (a *API) markForDeletion(c echo.Context) error {
	ws, err := a.owned(c, false)
	if errors.Is(err, errNotFound) {
		herr := a.d.Workspaces.MarkHomeForDeletion(c.Request().Context(), c.Param("id"), userID(c))
		switch {
		case herr == nil:
			return writeJSON(c, http.StatusAccepted, map[string]string{"status": "marked_for_deletion", "workspace_id": c.Param("id")})
		case errors.Is(herr, orchestrator.ErrNotFound), errors.Is(herr, orchestrator.ErrExists):
			return err
		}
		return a.fail(opMark, herr)
	}
	if err != nil {
		return err
	}
	if err := a.d.Workspaces.MarkForDeletion(c.Request().Context(), ws); err != nil {
		return a.fail(opMark, err)
	}
	return writeJSON(c, http.StatusAccepted, map[string]string{"status": "marked_for_deletion", "workspace_id": ws.ID})
}

// heartbeat is POST …/heartbeat (§3.8).
func (a *API) heartbeat(c echo.Context) error {
	ws, err := a.owned(c, false)
	if err != nil {
		return err
	}
	if err := a.d.Workspaces.Heartbeat(c.Request().Context(), ws); err != nil {
		return a.fail(opBeat, err)
	}
	return noContent(c)
}

// health is GET …/health (§3.15): healthy when running and `echo healthy`
// answers; status re-read after the probe, "unknown" if the record went.
func (a *API) health(c echo.Context) error {
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	healthy := false
	if ws.Status == fleet.StatusRunning {
		res, err := a.d.Workspaces.Exec(ctx, ws, devExec("echo healthy", nil, 10*time.Second))
		healthy = err == nil && !res.TimedOut && res.ExitCode == 0 && bytes.Contains(res.Stdout, []byte("healthy"))
	}
	status := string(ws.Status)
	switch cur, err := a.d.Workspaces.Get(ctx, ws.ID); {
	case err == nil:
		status = string(cur.Status)
	case errors.Is(err, orchestrator.ErrNotFound):
		status = "unknown"
	}
	return writeJSON(c, http.StatusOK, map[string]any{"healthy": healthy, "status": status})
}

// resources is GET …/resources (§3.18): a live sample, or the defaults
// when none can be had.
func (a *API) resources(c echo.Context) error {
	ws, err := a.owned(c, false)
	if err != nil {
		return err
	}
	stats, err := a.d.Workspaces.Resources(c.Request().Context(), ws)
	if err != nil {
		a.log.Debug("no resource sample; answering the defaults", "workspace_id", ws.ID, "error", err)
		return writeJSON(c, http.StatusOK, defaultResources)
	}
	return writeJSON(c, http.StatusOK, resourcesOf(stats))
}
