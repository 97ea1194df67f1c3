package registry

import (
	"berth/scheduler/internal/fleet"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ReportedUsage is a server's usage as last reported by its agent (a
// snapshot for display and placement scoring; reservations are separate, see
// ServerUsage).
type ReportedUsage struct {
	CPU              float64
	MemoryMB         int64
	DiskGB           int64
	ActiveWorkspaces int
	ReportedAt       time.Time // zero if never reported
}

// Server is a registered Docker host. The fields from ID to WorkspaceImageGPU
// are configuration (set by CreateServer and UpsertServer); the rest is
// state kept by the registry.
type Server struct {
	ID           string
	Name         string // unique; CreateServer and UpsertServer default it to ID
	Hostname     string
	IPAddress    string
	AgentPort    int
	Architecture string
	Region       string
	Labels       map[string]string

	TLSCertPath string
	TLSKeyPath  string
	TLSCAPath   string

	// Admin capacity overrides; 0 means use the capacity the agent measures.
	TotalCPU           float64
	TotalMemoryMB      int64
	TotalDiskGB        int64
	TotalBandwidthMbps int64
	MaxWorkspaces      int // 0 = unlimited

	GPUType  string
	GPUCount int

	WorkspaceImage      string
	WorkspaceImageARM64 string
	WorkspaceImageAMD64 string
	WorkspaceImageGPU   string

	State           fleet.State  // CreateServer and UpsertServer default it to active
	Health          fleet.Health // starts unknown; set by SetServerHealth only
	LastHealthCheck time.Time
	LastError       string
	Usage           ReportedUsage
	PlacementEpoch  int64 // the epoch of the latest placement on this server

	CreatedAt time.Time
	UpdatedAt time.Time // last change of configuration or state
}

// ServerPatch lists the changes UpdateServer makes; nil fields are left alone.
type ServerPatch struct {
	Labels             *map[string]string
	TotalCPU           *float64
	TotalMemoryMB      *int64
	TotalDiskGB        *int64
	TotalBandwidthMbps *int64
	MaxWorkspaces      *int
	State              *fleet.State
}

const serverColumns = `id, name, hostname, ip_address, agent_port, architecture, region, labels,
	tls_cert_path, tls_key_path, tls_ca_path,
	total_cpu, total_memory_mb, total_disk_gb, total_bandwidth_mbps, max_workspaces, gpu_type, gpu_count,
	workspace_image, workspace_image_arm64, workspace_image_amd64, workspace_image_gpu,
	state, health, last_health_check, last_error,
	used_cpu, used_memory_mb, used_disk_gb, active_workspaces, usage_reported_at,
	placement_epoch, created_at, updated_at`

func scanServer(sc scanner) (Server, error) {
	var (
		s                                    Server
		labels, created, updated             string
		tlsCert, tlsKey, tlsCA, gpuType      sql.NullString
		img, imgARM, imgAMD, imgGPU, lastErr sql.NullString
		lastCheck, usageAt                   sql.NullString
	)
	err := sc.Scan(&s.ID, &s.Name, &s.Hostname, &s.IPAddress, &s.AgentPort, &s.Architecture, &s.Region, &labels,
		&tlsCert, &tlsKey, &tlsCA,
		&s.TotalCPU, &s.TotalMemoryMB, &s.TotalDiskGB, &s.TotalBandwidthMbps, &s.MaxWorkspaces, &gpuType, &s.GPUCount,
		&img, &imgARM, &imgAMD, &imgGPU,
		&s.State, &s.Health, &lastCheck, &lastErr,
		&s.Usage.CPU, &s.Usage.MemoryMB, &s.Usage.DiskGB, &s.Usage.ActiveWorkspaces, &usageAt,
		&s.PlacementEpoch, &created, &updated)
	if err != nil {
		return Server{}, err
	}
	s.TLSCertPath, s.TLSKeyPath, s.TLSCAPath, s.GPUType = tlsCert.String, tlsKey.String, tlsCA.String, gpuType.String
	s.WorkspaceImage, s.WorkspaceImageARM64, s.WorkspaceImageAMD64, s.WorkspaceImageGPU =
		img.String, imgARM.String, imgAMD.String, imgGPU.String
	s.LastError = lastErr.String
	if s.Labels, err = decodeStringMap(labels); err != nil {
		return Server{}, err
	}
	if s.LastHealthCheck, err = parseNullTime(lastCheck); err != nil {
		return Server{}, err
	}
	if s.Usage.ReportedAt, err = parseNullTime(usageAt); err != nil {
		return Server{}, err
	}
	if s.CreatedAt, err = parseTime(created); err != nil {
		return Server{}, err
	}
	if s.UpdatedAt, err = parseTime(updated); err != nil {
		return Server{}, err
	}
	return s, nil
}

func getServer(ctx context.Context, q queryer, id string) (Server, error) {
	s, err := scanServer(q.QueryRowContext(ctx, "SELECT "+serverColumns+" FROM servers WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Server{}, fmt.Errorf("server %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Server{}, fmt.Errorf("server %q: %w", id, err)
	}
	return s, nil
}

// prepareServer fills the defaults of a server about to be written and checks it.
func prepareServer(s *Server) error {
	if s.ID == "" {
		return fmt.Errorf("server id is empty: %w", ErrInvalid)
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	if s.State == "" {
		s.State = fleet.StateActive
	}
	return validateServer(*s)
}

func validateServer(s Server) error {
	switch {
	case !s.State.Valid():
		return fmt.Errorf("server %q: state %q: %w", s.ID, s.State, ErrInvalid)
	case s.AgentPort < 0 || s.AgentPort > 65535:
		return fmt.Errorf("server %q: agent port %d: %w", s.ID, s.AgentPort, ErrInvalid)
	case s.TotalCPU < 0 || s.TotalMemoryMB < 0 || s.TotalDiskGB < 0 || s.TotalBandwidthMbps < 0 ||
		s.MaxWorkspaces < 0 || s.GPUCount < 0:
		return fmt.Errorf("server %q: negative capacity: %w", s.ID, ErrInvalid)
	}
	return nil
}

// serverConfigArgs are the values of the configuration columns, in the order
// of serverConfigColumns.
const serverConfigColumns = `name, hostname, ip_address, agent_port, architecture, region, labels,
	tls_cert_path, tls_key_path, tls_ca_path,
	total_cpu, total_memory_mb, total_disk_gb, total_bandwidth_mbps, max_workspaces, gpu_type, gpu_count,
	workspace_image, workspace_image_arm64, workspace_image_amd64, workspace_image_gpu`

func serverConfigArgs(s Server) ([]any, error) {
	labels, err := encodeStringMap(s.Labels)
	if err != nil {
		return nil, err
	}
	return []any{s.Name, s.Hostname, s.IPAddress, s.AgentPort, s.Architecture, s.Region, labels,
		nullString(s.TLSCertPath), nullString(s.TLSKeyPath), nullString(s.TLSCAPath),
		s.TotalCPU, s.TotalMemoryMB, s.TotalDiskGB, s.TotalBandwidthMbps, s.MaxWorkspaces,
		nullString(s.GPUType), s.GPUCount,
		nullString(s.WorkspaceImage), nullString(s.WorkspaceImageARM64),
		nullString(s.WorkspaceImageAMD64), nullString(s.WorkspaceImageGPU)}, nil
}

// insertServerTx inserts a new server row at the end of the registration order.
func insertServerTx(ctx context.Context, tx *wtx, s Server) error {
	args, err := serverConfigArgs(s)
	if err != nil {
		return err
	}
	t := formatTime(now())
	args = append([]any{s.ID}, args...)
	args = append(args, s.State, t, t)
	_, err = tx.ExecContext(ctx, `
		INSERT INTO servers (id, seq, `+serverConfigColumns+`, state, created_at, updated_at)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM servers), `+placeholders(len(args)-1)+`)`, args...)
	if isUniqueViolation(err) {
		return fmt.Errorf("server %q (name %q): %w", s.ID, s.Name, ErrConflict)
	}
	if err != nil {
		return err
	}
	tx.serverChanged(s.ID)
	_, err = addEventTx(ctx, tx, Event{Kind: EventServerRegistered, ServerID: s.ID,
		Message: fmt.Sprintf("server %s registered (%s)", s.ID, s.Hostname)})
	return err
}

// CreateServer registers a new server and returns it as stored. A taken id or
// name gives ErrConflict. Health starts as unknown; State defaults to active.
func (db *DB) CreateServer(ctx context.Context, s Server) (Server, error) {
	if err := prepareServer(&s); err != nil {
		return Server{}, fmt.Errorf("create server: %w", err)
	}
	var out Server
	err := db.writeTx(ctx, func(tx *wtx) error {
		if err := insertServerTx(ctx, tx, s); err != nil {
			return err
		}
		var err error
		out, err = getServer(ctx, tx, s.ID)
		return err
	})
	if err != nil {
		return Server{}, fmt.Errorf("create server: %w", err)
	}
	return out, nil
}

// UpsertServer registers s, or, if its id exists, overwrites its
// configuration fields (ID to WorkspaceImageGPU of Server) with those of s.
// State, health, reported usage, the placement epoch and the creation time
// of an existing server are kept. It is meant for servers declared in
// configuration; a name taken by another server gives ErrConflict.
func (db *DB) UpsertServer(ctx context.Context, s Server) (Server, error) {
	if err := prepareServer(&s); err != nil {
		return Server{}, fmt.Errorf("upsert server: %w", err)
	}
	var out Server
	err := db.writeTx(ctx, func(tx *wtx) error {
		_, err := getServer(ctx, tx, s.ID)
		switch {
		case errors.Is(err, ErrNotFound):
			if err := insertServerTx(ctx, tx, s); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			args, err := serverConfigArgs(s)
			if err != nil {
				return err
			}
			args = append(args, formatTime(now()), s.ID)
			_, err = tx.ExecContext(ctx, `
				UPDATE servers SET (`+serverConfigColumns+`, updated_at) = (`+placeholders(len(args)-1)+`)
				WHERE id = ?`, args...)
			if isUniqueViolation(err) {
				return fmt.Errorf("server %q (name %q): %w", s.ID, s.Name, ErrConflict)
			}
			if err != nil {
				return err
			}
			tx.serverChanged(s.ID)
		}
		out, err = getServer(ctx, tx, s.ID)
		return err
	})
	if err != nil {
		return Server{}, fmt.Errorf("upsert server: %w", err)
	}
	return out, nil
}

// GetServer returns the server with the given id, or ErrNotFound.
func (db *DB) GetServer(ctx context.Context, id string) (Server, error) {
	s, err := getServer(ctx, db.read, id)
	if err != nil {
		return Server{}, fmt.Errorf("get server: %w", err)
	}
	return s, nil
}

// ListServers returns all servers in registration order.
func (db *DB) ListServers(ctx context.Context) ([]Server, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT "+serverColumns+" FROM servers ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	defer rows.Close()
	servers := []Server{}
	for rows.Next() {
		s, err := scanServer(rows)
		if err != nil {
			return nil, fmt.Errorf("list servers: %w", err)
		}
		servers = append(servers, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	return servers, nil
}

// UpdateServer applies patch to the server with the given id and returns it
// as stored. A state change is recorded as an event. Changing capacity or
// max workspaces below what is already reserved is allowed: existing
// reservations stay, new ones are refused until there is room again.
func (db *DB) UpdateServer(ctx context.Context, id string, patch ServerPatch) (Server, error) {
	var out Server
	err := db.writeTx(ctx, func(tx *wtx) error {
		s, err := getServer(ctx, tx, id)
		if err != nil {
			return err
		}
		old := s.State
		if patch.Labels != nil {
			s.Labels = *patch.Labels
		}
		if patch.TotalCPU != nil {
			s.TotalCPU = *patch.TotalCPU
		}
		if patch.TotalMemoryMB != nil {
			s.TotalMemoryMB = *patch.TotalMemoryMB
		}
		if patch.TotalDiskGB != nil {
			s.TotalDiskGB = *patch.TotalDiskGB
		}
		if patch.TotalBandwidthMbps != nil {
			s.TotalBandwidthMbps = *patch.TotalBandwidthMbps
		}
		if patch.MaxWorkspaces != nil {
			s.MaxWorkspaces = *patch.MaxWorkspaces
		}
		if patch.State != nil {
			s.State = *patch.State
		}
		if err := validateServer(s); err != nil {
			return err
		}
		labels, err := encodeStringMap(s.Labels)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			UPDATE servers SET labels = ?, total_cpu = ?, total_memory_mb = ?, total_disk_gb = ?,
				total_bandwidth_mbps = ?, max_workspaces = ?, state = ?, updated_at = ?
			WHERE id = ?`,
			labels, s.TotalCPU, s.TotalMemoryMB, s.TotalDiskGB, s.TotalBandwidthMbps, s.MaxWorkspaces,
			s.State, formatTime(now()), id)
		tx.serverChanged(id)
		if err != nil {
			return err
		}
		if s.State != old {
			// An operator's choice: the podex server sync no longer undoes
			// a cordon it made (apiservers.go).
			if _, err := tx.ExecContext(ctx, "UPDATE api_servers SET cordoned_by_sync = 0 WHERE server_id = ?", id); err != nil {
				return err
			}
			_, err := addEventTx(ctx, tx, Event{Kind: EventServerState, ServerID: id,
				Message: fmt.Sprintf("server %s: state %s -> %s", id, old, s.State),
				Data:    map[string]any{"from": string(old), "to": string(s.State)}})
			if err != nil {
				return err
			}
		}
		out, err = getServer(ctx, tx, id)
		return err
	})
	if err != nil {
		return Server{}, fmt.Errorf("update server: %w", err)
	}
	return out, nil
}

// DeleteServer removes the server. It refuses with ErrServerInUse while any
// workspace row names the server (drain and delete or move them first).
func (db *DB) DeleteServer(ctx context.Context, id string) error {
	err := db.writeTx(ctx, func(tx *wtx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM workspaces WHERE server_id = ?", id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("server %q: %d workspaces: %w", id, n, ErrServerInUse)
		}
		tx.serverChanged(id)
		res, err := tx.ExecContext(ctx, "DELETE FROM servers WHERE id = ?", id)
		if isForeignKeyViolation(err) { // cannot happen after the count; kept for safety
			return fmt.Errorf("server %q: %w", id, ErrServerInUse)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("server %q: %w", id, ErrNotFound)
		}
		_, err = addEventTx(ctx, tx, Event{Kind: EventServerDeleted, ServerID: id,
			Message: fmt.Sprintf("server %s deleted", id)})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete server: %w", err)
	}
	return nil
}

// SetServerHealth records a health check of the server at time at: its
// health and last error ("" for none). It reports whether the health value
// changed; a change is also recorded as a server.health event.
func (db *DB) SetServerHealth(ctx context.Context, id string, health fleet.Health, lastError string, at time.Time) (bool, error) {
	if !health.Valid() {
		return false, fmt.Errorf("set server health: %q: %w", health, ErrInvalid)
	}
	if at.IsZero() {
		at = now()
	}
	var changed bool
	err := db.writeTx(ctx, func(tx *wtx) error {
		var old fleet.Health
		err := tx.QueryRowContext(ctx, "SELECT health FROM servers WHERE id = ?", id).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("server %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			UPDATE servers SET health = ?, last_error = ?, last_health_check = ? WHERE id = ?`,
			health, nullString(lastError), formatTime(at), id)
		if err != nil {
			return err
		}
		tx.serverChanged(id)
		changed = old != health
		if !changed {
			return nil
		}
		msg := fmt.Sprintf("server %s: %s -> %s", id, old, health)
		if lastError != "" {
			msg += ": " + lastError
		}
		data := map[string]any{"from": string(old), "to": string(health)}
		if lastError != "" {
			data["error"] = lastError
		}
		_, err = addEventTx(ctx, tx, Event{At: at, Kind: EventServerHealth, ServerID: id, Message: msg, Data: data})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("set server health: %w", err)
	}
	return changed, nil
}

// SetServerUsage stores the usage the server's agent last reported. A zero
// u.ReportedAt means now.
func (db *DB) SetServerUsage(ctx context.Context, id string, u ReportedUsage) error {
	if u.ReportedAt.IsZero() {
		u.ReportedAt = now()
	}
	err := db.writeTx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE servers SET used_cpu = ?, used_memory_mb = ?, used_disk_gb = ?, active_workspaces = ?,
				usage_reported_at = ?
			WHERE id = ?`,
			u.CPU, u.MemoryMB, u.DiskGB, u.ActiveWorkspaces, formatTime(u.ReportedAt), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("server %q: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set server usage: %w", err)
	}
	return nil
}
