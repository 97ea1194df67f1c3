package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// This file serves the podex API's server-management routes (contract §4)
// under the service token. Where podex talked to a Docker daemon, berth
// talks to the host's agent: ip_address and docker_port are the agent's
// address and mTLS port, and the scheduler's own certificate is the client
// identity (the request's tls_* paths are read but not used: the agent is
// always mTLS with the cluster CA).

// Time limits of the podex routes (contract §4 and §7's caller timeouts).
const (
	testConnectionTimeout = 10 * time.Second
	imagesTimeout         = 30 * time.Second
	pullTimeout           = 300 * time.Second
)

// Outcome messages of POST /servers/test-connection (contract §4.1).
const (
	msgConnected = "Connection successful"
	msgRefused   = "Connection refused - check if Docker is running and accessible"
	msgTLS       = "TLS/Certificate error: "
	msgDocker    = "Docker connection error: "
	msgFailed    = "Connection failed: "
)

// DockerInfo is contract §4.1's docker_info.
type DockerInfo struct {
	ServerVersion string `json:"server_version"`
	OS            string `json:"os"`
	Architecture  string `json:"architecture"`
	Containers    int    `json:"containers"`
	Images        int    `json:"images"`
	MemoryTotal   int64  `json:"memory_total"` // bytes
	CPUs          int    `json:"cpus"`
}

// TestConnectionResponse is contract §4.1's answer, always with 200.
type TestConnectionResponse struct {
	Success    bool        `json:"success"`
	Message    string      `json:"message"`
	DockerInfo *DockerInfo `json:"docker_info"`
	Error      *string     `json:"error"`
}

// ImageInfo is one image of contract §4.2.
type ImageInfo struct {
	ID      string   `json:"id"` // the first 12 characters of the full id, "sha256:" included
	Tags    []string `json:"tags"`
	SizeMB  int64    `json:"size_mb"`
	Created *string  `json:"created"`
}

// ImagesResponse is contract §4.2's answer.
type ImagesResponse struct {
	ServerID   string      `json:"server_id"`
	Images     []ImageInfo `json:"images"`
	TotalCount int         `json:"total_count"`
}

// PullResponse is contract §4.3's answer; with ?stream=1 it is the last
// NDJSON line, after the progress lines.
type PullResponse struct {
	Success  bool   `json:"success"`
	Message  string `json:"message"`
	Image    string `json:"image"`
	ServerID string `json:"server_id"`
}

// PullProgress is one progress line of a streamed pull.
type PullProgress struct {
	Status   string `json:"status"`
	ID       string `json:"id,omitempty"`
	Progress string `json:"progress,omitempty"`
}

func (a *API) testConnection(c echo.Context) error {
	v, err := readModel(c)
	if err != nil {
		return err
	}
	ip := v.requiredString("ip_address")
	port := v.requiredInt("docker_port")
	v.requiredBool("tls_enabled")
	for _, f := range []string{"tls_cert_path", "tls_key_path", "tls_ca_path"} {
		v.optionalString(f)
	}
	if err := v.err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), testConnectionTimeout)
	defer cancel()
	return c.JSON(http.StatusOK, a.connectionTest(ctx, net.JoinHostPort(ip, strconv.FormatInt(port, 10))))
}

// connectionTest reaches the agent at addr: TCP, then its certificate
// (which names the server id to verify it against), then Info over mTLS.
func (a *API) connectionTest(ctx context.Context, addr string) TestConnectionResponse {
	fail := func(msg string) TestConnectionResponse { return TestConnectionResponse{Message: msg} }
	leaf, stage, err := peekCertificate(ctx, addr)
	switch {
	case stage == stageDial && errors.Is(err, syscall.ECONNREFUSED):
		return fail(msgRefused)
	case stage == stageDial:
		return fail(msgFailed + err.Error())
	case stage == stageHandshake:
		return fail(msgTLS + err.Error())
	}
	info, err := a.d.Agents.Probe(certServerID(leaf), addr).Info(ctx)
	switch {
	case err == nil:
		return TestConnectionResponse{Success: true, Message: msgConnected, DockerInfo: &DockerInfo{
			ServerVersion: info.ServerVersion, OS: info.OS, Architecture: info.Architecture, Containers: info.Containers,
			Images: info.Images, MemoryTotal: info.MemoryTotal, CPUs: info.CPUs}}
	case errors.Is(err, agentclient.ErrUnreachable):
		// TCP and the agent's certificate were fine a moment ago: the mTLS
		// verification (CA, role, name) is what failed.
		return fail(msgTLS + err.Error())
	case errors.Is(err, agentclient.ErrDocker), errors.Is(err, agentclient.ErrUnavailable):
		return fail(msgDocker + err.Error())
	}
	return fail(msgFailed + err.Error())
}

// availableServer returns the registered server id if it is healthy or
// degraded now; ok is false otherwise (contract §4.2–4.3 treat unknown and
// unhealthy servers alike).
func (a *API) availableServer(ctx context.Context, id string) (registry.Server, bool) {
	snap, err := a.d.Fleet.Snapshot(ctx)
	if err != nil {
		a.log.Warn("read servers", "error", err)
		return registry.Server{}, false
	}
	s, ok := snap.Server(id)
	if !ok {
		return registry.Server{}, false
	}
	n, _ := snap.Node(id)
	return s, fleet.Usable(n.Health)
}

func (a *API) images(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), imagesTimeout)
	defer cancel()
	id := c.Param("id")
	out := ImagesResponse{ServerID: id, Images: []ImageInfo{}}
	s, ok := a.availableServer(ctx, id)
	if !ok {
		return c.JSON(http.StatusOK, out)
	}
	imgs, err := a.d.Agents.Client(s.ID, orchestrator.AgentAddr(s)).Images(ctx)
	if err != nil {
		a.log.Warn("list images", "server", id, "error", err)
		return c.JSON(http.StatusOK, out)
	}
	for _, img := range imgs {
		tags := img.Tags
		if tags == nil {
			tags = []string{}
		}
		short := img.ID
		if len(short) > 12 {
			short = short[:12]
		}
		out.Images = append(out.Images, ImageInfo{ID: short, Tags: tags, SizeMB: img.Size / (1 << 20), Created: timestamp(img.Created)})
	}
	out.TotalCount = len(out.Images)
	return c.JSON(http.StatusOK, out)
}

func (a *API) pullImage(c echo.Context) error {
	v, err := readModel(c)
	if err != nil {
		return err
	}
	image := v.requiredString("image")
	tag := v.optionalString("tag")
	if err := v.err(); err != nil {
		return err
	}
	if tag == "" {
		tag = "latest"
	}
	stream, _ := strconv.ParseBool(c.QueryParam("stream"))
	ctx, cancel := context.WithTimeout(c.Request().Context(), pullTimeout)
	defer cancel()
	id := c.Param("id")
	out := PullResponse{Image: image + ":" + tag, ServerID: id}

	s, ok := a.availableServer(ctx, id)
	if !ok {
		out.Message = "Server " + id + " not available in compute service"
		return c.JSON(http.StatusOK, out)
	}
	var progress func(wire.PullProgress)
	if stream {
		c.Response().Header().Set(echo.HeaderContentType, "application/x-ndjson")
		c.Response().WriteHeader(http.StatusOK)
		progress = func(p wire.PullProgress) {
			if p.Done || p.Error != "" {
				return // the final line says how it ended
			}
			writeLine(c, PullProgress{Status: p.Status, ID: p.ID, Progress: p.Progress})
		}
	}
	err = a.d.Agents.Client(s.ID, orchestrator.AgentAddr(s)).Pull(ctx, wire.PullRequest{Image: image, Tag: tag}, progress)
	var agentErr *agentclient.Error
	switch {
	case err == nil:
		out.Success, out.Message = true, "Successfully pulled "+out.Image
	case errors.Is(err, agentclient.ErrDocker) && errors.As(err, &agentErr):
		out.Message = "Docker API error: " + agentErr.Message
	default:
		out.Message = err.Error()
	}
	if err != nil {
		a.log.Warn("image pull failed", "server", id, "image", out.Image, "error", err)
	}
	if stream {
		writeLine(c, out)
		return nil
	}
	return c.JSON(http.StatusOK, out)
}

// writeLine writes v as one NDJSON line and flushes it.
func writeLine(c echo.Context, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	w := c.Response()
	_, _ = w.Write(append(b, '\n'))
	w.Flush()
}

// model is a request body read as FastAPI reads a pydantic model: fields
// are checked one by one and every problem becomes one entry of the 422
// list (contract §1.2, framework).
type model struct {
	obj  map[string]any
	errs []fieldError
}

// fieldError is one entry of FastAPI's 422 list.
type fieldError struct {
	Type  string `json:"type"`
	Loc   []any  `json:"loc"`
	Msg   string `json:"msg"`
	Input any    `json:"input"`
}

func unprocessable(errs []fieldError) error {
	return echo.NewHTTPError(http.StatusUnprocessableEntity, errs)
}

// readModel reads the body; a missing, malformed or non-object body is a
// 422 at once.
func readModel(c echo.Context) (*model, error) {
	raw, err := io.ReadAll(limitBody(c))
	if err := tooLarge(err); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "There was an error parsing the body")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, unprocessable([]fieldError{{Type: "missing", Loc: []any{"body"}, Msg: "Field required"}})
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, unprocessable([]fieldError{{Type: "json_invalid", Loc: []any{"body", dec.InputOffset()},
			Msg: "JSON decode error", Input: map[string]any{}}})
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, unprocessable([]fieldError{{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: v}})
	}
	return &model{obj: obj}, nil
}

func (m *model) add(typ, field, msg string, input any) {
	m.errs = append(m.errs, fieldError{Type: typ, Loc: []any{"body", field}, Msg: msg, Input: input})
}

func (m *model) err() error {
	if len(m.errs) == 0 {
		return nil
	}
	return unprocessable(m.errs)
}

func (m *model) requiredString(name string) string {
	v, ok := m.obj[name]
	if !ok {
		m.add("missing", name, "Field required", m.obj)
		return ""
	}
	s, ok := v.(string)
	if !ok {
		m.add("string_type", name, "Input should be a valid string", v)
	}
	return s
}

// optionalString reads a string-or-null field; "" when absent or null.
func (m *model) optionalString(name string) string {
	v, ok := m.obj[name]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		m.add("string_type", name, "Input should be a valid string", v)
	}
	return s
}

// requiredInt accepts what pydantic's lax mode does: integers, floats
// without a fraction and numeric strings.
func (m *model) requiredInt(name string) int64 {
	v, ok := m.obj[name]
	if !ok {
		m.add("missing", name, "Field required", m.obj)
		return 0
	}
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		if f, err := x.Float64(); err == nil && f == float64(int64(f)) {
			return int64(f)
		}
		m.add("int_from_float", name, "Input should be a valid integer, got a number with a fractional part", v)
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return n
		}
		m.add("int_parsing", name, "Input should be a valid integer, unable to parse string as an integer", v)
	default:
		m.add("int_type", name, "Input should be a valid integer", v)
	}
	return 0
}

// requiredBool accepts what pydantic's lax mode does: booleans, 0 and 1,
// and the usual words.
func (m *model) requiredBool(name string) bool {
	v, ok := m.obj[name]
	if !ok {
		m.add("missing", name, "Field required", m.obj)
		return false
	}
	switch x := v.(type) {
	case bool:
		return x
	case json.Number:
		switch x.String() {
		case "0":
			return false
		case "1":
			return true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "0", "off", "f", "false", "n", "no":
			return false
		case "1", "on", "t", "true", "y", "yes":
			return true
		}
	default:
		m.add("bool_type", name, "Input should be a valid boolean", v)
		return false
	}
	m.add("bool_parsing", name, "Input should be a valid boolean, unable to interpret input", v)
	return false
}
