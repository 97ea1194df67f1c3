package computeapi

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// workspaceInfo is WorkspaceInfo (§5.2): create, get and list answer it.
type workspaceInfo struct {
	ID           string            `json:"id"`
	UserID       string            `json:"user_id"`
	SessionID    string            `json:"session_id"`
	Status       string            `json:"status"`
	Tier         string            `json:"tier"`
	Host         string            `json:"host"`
	Port         int               `json:"port"`
	ServerID     *string           `json:"server_id"`
	ContainerID  *string           `json:"container_id"`
	Repos        []string          `json:"repos"`
	CreatedAt    isoTime           `json:"created_at"`
	LastActivity isoTime           `json:"last_activity"`
	Metadata     map[string]any    `json:"metadata"`
	AuthToken    *string           `json:"auth_token"`
	Image        *string           `json:"image"`
	Repositories []string          `json:"repositories"`
	Environment  map[string]string `json:"environment"`
}

func infoOf(ws registry.Workspace) workspaceInfo {
	port := ws.Port
	if port == 0 {
		port = registry.DefaultPort
	}
	meta := ws.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	repos := redactAll(ws.Repositories)
	if repos == nil {
		repos = []string{}
	}
	return workspaceInfo{
		ID: ws.ID, UserID: ws.UserID, SessionID: ws.SessionID, Status: string(ws.Status), Tier: ws.Tier,
		Host: ws.Host, Port: port, ServerID: nullable(ws.ServerID), ContainerID: nullable(ws.ContainerID),
		Repos:     []string{}, // always [] (§5.2); the repos are in repositories
		CreatedAt: isoTime(ws.CreatedAt), LastActivity: isoTime(ws.LastActivity),
		Metadata: meta, AuthToken: nil, Image: nullable(ws.Image), Repositories: repos,
		Environment: redact(ws.Environment),
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// This is the one home of what WorkspaceInfo hides (§15, quirk 20): the
// container keeps the real values, the answers show "***".

// redact replaces the values of secret-looking keys with "***" (see
// secretKeyParts, case-insensitively, and GIT_CREDENTIALS), and the
// credentials of any URL in the other values (redactURLs).
func redact(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if isSecretKey(k) {
			v = "***"
		}
		out[k] = redactURLs(v)
	}
	return out
}

// secretKeyParts make an environment name secret wherever they appear in
// it: GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, OPENAI_API_KEY,
// STRIPE_APIKEY, SSH_PRIVATE_KEY, PRIVATE_KEY_PEM, GPG_PASSPHRASE.
var secretKeyParts = []string{"TOKEN", "SECRET", "PASSWORD", "PASSPHRASE", "API_KEY", "APIKEY", "PRIVATE_KEY"}

func isSecretKey(k string) bool {
	u := strings.ToUpper(k)
	return u == "GIT_CREDENTIALS" || slices.ContainsFunc(secretKeyParts, func(p string) bool { return strings.Contains(u, p) })
}

// urlUserinfo is the user info of a URL in text: "scheme://user[:pass]@".
var urlUserinfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'"]*@`)

// redactURLs replaces the user info of every URL in s with "***"
// (https://user:token@host/… becomes https://***@host/…): repository URLs
// and values such as DATABASE_URL carry credentials there.
func redactURLs(s string) string { return urlUserinfo.ReplaceAllString(s, "${1}***@") }

// redactAll is redactURLs of each of list (nil stays nil).
func redactAll(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = redactURLs(s)
	}
	return out
}

// isoTime marshals like pydantic v2's JSON mode: ISO-8601 in UTC with a Z,
// and microseconds (six digits) only when they are not zero.
type isoTime time.Time

func (t isoTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + formatTime(time.Time(t)) + `"`), nil
}

func formatTime(t time.Time) string {
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s + "Z"
}

// pyFloat marshals a float as Python's json does: always with a fraction or
// an exponent (0.0, 1.0, 1e-07, 1e+16), so a float field reads as one.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return []byte("null"), nil
	}
	return []byte(formatFloat(x)), nil
}

// formatFloat is Python's repr(float): the shortest round-trip digits,
// positional for exponents -4..15, scientific with a two-digit exponent
// otherwise.
func formatFloat(x float64) string {
	e := strconv.FormatFloat(x, 'e', -1, 64) // d.ddde±XX
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// resourcesInfo is WorkspaceResourceMetrics (§3.18, §5.3).
type resourcesInfo struct {
	CPUPercent    pyFloat  `json:"cpu_percent"`
	CPULimitCores pyFloat  `json:"cpu_limit_cores"`
	MemoryUsedMB  int64    `json:"memory_used_mb"`
	MemoryLimitMB int64    `json:"memory_limit_mb"`
	MemoryPercent pyFloat  `json:"memory_percent"`
	DiskReadMB    pyFloat  `json:"disk_read_mb"`
	DiskWriteMB   pyFloat  `json:"disk_write_mb"`
	NetworkRxMB   pyFloat  `json:"network_rx_mb"`
	NetworkTxMB   pyFloat  `json:"network_tx_mb"`
	CollectedAt   *isoTime `json:"collected_at"`
	UptimeSeconds int64    `json:"container_uptime_seconds"`
}

// defaultResources is what §3.18 answers when there are no metrics.
var defaultResources = resourcesInfo{CPULimitCores: 1.0, MemoryLimitMB: 1024}

func resourcesOf(s wire.ContainerStats) resourcesInfo {
	r := resourcesInfo{
		CPUPercent: pyFloat(s.CPUPercent), CPULimitCores: pyFloat(s.CPULimitCores),
		MemoryUsedMB: s.MemoryUsedMB, MemoryLimitMB: s.MemoryLimitMB, MemoryPercent: pyFloat(s.MemoryPercent),
		DiskReadMB: pyFloat(s.DiskReadMB), DiskWriteMB: pyFloat(s.DiskWriteMB),
		NetworkRxMB: pyFloat(s.NetworkRxMB), NetworkTxMB: pyFloat(s.NetworkTxMB),
		UptimeSeconds: s.UptimeSeconds,
	}
	if !s.CollectedAt.IsZero() {
		t := isoTime(s.CollectedAt)
		r.CollectedAt = &t
	}
	return r
}

// writeJSON writes v like FastAPI's JSONResponse: no HTML escaping.
func writeJSON(c echo.Context, status int, v any) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return c.Blob(status, echo.MIMEApplicationJSON, []byte(strings.TrimSuffix(b.String(), "\n")))
}

// noContent is a 204 with an empty body.
func noContent(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
