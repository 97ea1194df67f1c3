package registry

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"berth/scheduler/internal/fleet"
)

// Limits are the effective totals of a server that reservations are checked
// against, as the caller computes them (admin overrides, else the measured
// capacity). Every field is a ceiling on the sum of the reservations of the
// server's workspaces, the new one included; 0 means unlimited.
type Limits struct {
	CPU           float64
	MemoryMB      int64
	DiskGB        int64
	BandwidthMbps int64
	GPUCount      int
	MaxWorkspaces int
}

// Usage is what the workspace rows of one server reserve.
type Usage struct {
	Reserved   fleet.Resources
	Workspaces int // rows naming the server, whatever their status
}

// available is what the limits leave next to used: each limit minus what
// is reserved, and unlimited where the limit is 0.
func (l Limits) available(used fleet.Resources) fleet.Resources {
	avail := fleet.Unlimited
	if l.CPU > 0 {
		avail.CPU = l.CPU - used.CPU
	}
	if l.MemoryMB > 0 {
		avail.MemoryMB = l.MemoryMB - used.MemoryMB
	}
	if l.DiskGB > 0 {
		avail.DiskGB = l.DiskGB - used.DiskGB
	}
	if l.BandwidthMbps > 0 {
		avail.BandwidthMbps = l.BandwidthMbps - used.BandwidthMbps
	}
	if l.GPUCount > 0 {
		avail.GPUCount = l.GPUCount - used.GPUCount
	}
	return avail
}

// fits checks with fleet.Fits that req fits next to used within l, and
// that the server has a workspace slot left. It returns nil or an
// ErrInsufficientCapacity error naming the first resource short.
func (l Limits) fits(serverID string, used Usage, req fleet.Resources) error {
	if short, ok := fleet.Fits(l.available(used.Reserved), req); !ok {
		return fmt.Errorf("server %q: %s: %w", serverID, short.Reason(), ErrInsufficientCapacity)
	}
	if !fleet.RoomForWorkspace(l.MaxWorkspaces, used.Workspaces) {
		return fmt.Errorf("server %q: max workspaces reached (%d): %w", serverID, l.MaxWorkspaces, ErrInsufficientCapacity)
	}
	return nil
}

func validateLimits(l Limits) error {
	if l.CPU < 0 || l.MemoryMB < 0 || l.DiskGB < 0 || l.BandwidthMbps < 0 || l.GPUCount < 0 || l.MaxWorkspaces < 0 {
		return fmt.Errorf("negative limits %+v: %w", l, ErrInvalid)
	}
	return nil
}

// serverUsageTx sums the reservations of the workspaces on serverID, leaving
// out the workspace exceptID (the one being moved or resized). The filter is
// on rowid, which the index on (server_id, res_*) holds, so the sum is read
// from that index alone.
func serverUsageTx(ctx context.Context, tx *wtx, serverID, exceptID string) (Usage, error) {
	var u Usage
	err := tx.QueryRowContext(ctx, `
		SELECT COALESCE(SUM(res_cpu), 0), COALESCE(SUM(res_memory_mb), 0), COALESCE(SUM(res_disk_gb), 0),
			COALESCE(SUM(res_bandwidth_mbps), 0), COALESCE(SUM(res_gpu_count), 0), COUNT(*)
		FROM workspaces
		WHERE server_id = ? AND rowid IS NOT (SELECT rowid FROM workspaces WHERE id = ?)`, serverID, exceptID,
	).Scan(&u.Reserved.CPU, &u.Reserved.MemoryMB, &u.Reserved.DiskGB, &u.Reserved.BandwidthMbps,
		&u.Reserved.GPUCount, &u.Workspaces)
	return u, err
}

// placeTx is the placement step shared by ReserveAndInsert and MoveWorkspace:
// the server must exist and be active, and the request must fit next to the
// reservations already there (those of exceptID left out). It then bumps the
// server's placement epoch and returns the new epoch and the host name to
// record for the workspace.
func placeTx(ctx context.Context, tx *wtx, serverID, exceptID string, req fleet.Resources, l Limits) (int64, string, error) {
	var state fleet.State
	var hostname string
	err := tx.QueryRowContext(ctx, "SELECT state, hostname FROM servers WHERE id = ?", serverID).Scan(&state, &hostname)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("server %q: %w", serverID, ErrNotFound)
	}
	if err != nil {
		return 0, "", err
	}
	if state != fleet.StateActive {
		return 0, "", fmt.Errorf("server %q is %s: %w", serverID, state, ErrServerNotActive)
	}
	used, err := serverUsageTx(ctx, tx, serverID, exceptID)
	if err != nil {
		return 0, "", err
	}
	if err := l.fits(serverID, used, req); err != nil {
		return 0, "", err
	}
	var epoch int64
	err = tx.QueryRowContext(ctx,
		"UPDATE servers SET placement_epoch = placement_epoch + 1 WHERE id = ? RETURNING placement_epoch",
		serverID).Scan(&epoch)
	if err != nil {
		return 0, "", err
	}
	if hostname == "" {
		hostname = serverID
	}
	return epoch, hostname, nil
}

// ReserveAndInsert places a new workspace on ws.ServerID in one write
// transaction: if the id is taken it returns ErrExists (GetWorkspace returns
// the existing row); if the id's home belongs to another user,
// ErrOwnedByOther (otherwise the home is claimed: see claimHomeTx); if the server is unknown, ErrNotFound; if it is not
// active, ErrServerNotActive; if the reservations on the server plus
// ws.Reservation exceed limits, ErrInsufficientCapacity. Otherwise it bumps
// the server's placement epoch and inserts the row with status creating and
// that epoch, and stores creds (unless zero) in the same transaction, apart
// from the row (GetCredentials). Because writers are serialised, concurrent
// calls can never overcommit a server.
//
// Defaults: Port 0 → DefaultPort, Host "" → the server's hostname (or id),
// CreatedAt zero → now, LastActivity zero → CreatedAt. Status, Epoch and
// UpdatedAt of ws are ignored. It returns the row as stored (as GetWorkspace
// would), epoch included, without reading it back.
func (db *DB) ReserveAndInsert(ctx context.Context, ws Workspace, creds Credentials, limits Limits) (Workspace, error) {
	if ws.ServerID == "" {
		return Workspace{}, fmt.Errorf("reserve workspace %q: no server: %w", ws.ID, ErrInvalid)
	}
	if err := validateLimits(limits); err != nil {
		return Workspace{}, fmt.Errorf("reserve workspace %q: %w", ws.ID, err)
	}
	creds, sealErr := db.sealCredentials(ws.ID, creds)
	if sealErr != nil {
		return Workspace{}, fmt.Errorf("reserve workspace %q: %w", ws.ID, sealErr)
	}
	ws.Status = fleet.StatusCreating
	ws.UpdatedAt = now()
	ws.CreatedAt = normTime(ws.CreatedAt)
	if ws.CreatedAt.IsZero() {
		ws.CreatedAt = ws.UpdatedAt
	}
	ws.LastActivity = normTime(ws.LastActivity)
	if ws.LastActivity.IsZero() {
		ws.LastActivity = ws.CreatedAt
	}
	ws.AcknowledgedAt = normTime(ws.AcknowledgedAt)
	if ws.Port == 0 {
		ws.Port = DefaultPort
	}
	if err := validateWorkspace(ws); err != nil {
		return Workspace{}, fmt.Errorf("reserve workspace: %w", err)
	}
	if err := validateSettings(ws.Settings); err != nil {
		return Workspace{}, fmt.Errorf("reserve workspace %q: %w", ws.ID, err)
	}
	if err := validateCredentials(creds); err != nil {
		return Workspace{}, fmt.Errorf("reserve workspace %q: %w", ws.ID, err)
	}

	host := ws.Host
	err := db.writeTx(ctx, func(tx *wtx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM workspaces WHERE id = ?", ws.ID).Scan(&one)
		if err == nil {
			return fmt.Errorf("workspace %q: %w", ws.ID, ErrExists)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		epoch, serverHost, err := placeTx(ctx, tx, ws.ServerID, ws.ID, ws.Reservation, limits)
		if err != nil {
			return err
		}
		if err := claimHomeTx(ctx, tx, ws.ID, ws.UserID, ws.ServerID); err != nil {
			return err
		}
		ws.Epoch, ws.Host = epoch, cmp.Or(host, serverHost)
		if err := insertWorkspaceTx(ctx, tx, ws); err != nil {
			return err
		}
		if err := insertCredentialsTx(ctx, tx, ws.ID, creds); err != nil {
			return err
		}
		_, err = addEventTx(ctx, tx, Event{At: ws.UpdatedAt, Kind: EventWorkspacePlaced, ServerID: ws.ServerID,
			WorkspaceID: ws.ID, Message: fmt.Sprintf("workspace %s placed on %s (epoch %d)", ws.ID, ws.ServerID, epoch),
			Data: map[string]any{"epoch": epoch, "tier": ws.Tier}})
		return err
	})
	if err != nil {
		return Workspace{}, fmt.Errorf("reserve workspace: %w", err)
	}
	return ws, nil
}

// MoveWorkspace moves the workspace's reservation to newServerID in one write
// transaction, under the same rules as ReserveAndInsert (ErrNotFound,
// ErrServerNotActive, ErrInsufficientCapacity against limits, which are the
// new server's). The old server's share is released, the new server's epoch
// is bumped and recorded, Host is set to the new server, the container id is
// cleared (the container on the old server is not this placement's) and the
// status becomes creating; the settings, the credentials and AcknowledgedAt
// are kept (a moved workspace is still the one the create answered). Moving
// to the current server re-places it there with a new epoch. It returns the
// row as stored.
func (db *DB) MoveWorkspace(ctx context.Context, id, newServerID string, limits Limits) (Workspace, error) {
	if newServerID == "" {
		return Workspace{}, fmt.Errorf("move workspace %q: no server: %w", id, ErrInvalid)
	}
	if err := validateLimits(limits); err != nil {
		return Workspace{}, fmt.Errorf("move workspace %q: %w", id, err)
	}
	var out Workspace
	err := db.writeTx(ctx, func(tx *wtx) error {
		w, err := getWorkspace(ctx, tx, id)
		if err != nil {
			return err
		}
		epoch, host, err := placeTx(ctx, tx, newServerID, id, w.Reservation, limits)
		if err != nil {
			return err
		}
		old := w
		was, err := storedOf(old)
		if err != nil {
			return err
		}
		w.ServerID, w.Epoch, w.Host, w.ContainerID = newServerID, epoch, host, ""
		w.Status, w.UpdatedAt = fleet.StatusCreating, now()
		if err := writeWorkspaceTx(ctx, tx, was, w); err != nil {
			return err
		}
		_, err = addEventTx(ctx, tx, Event{At: w.UpdatedAt, Kind: EventWorkspaceMoved, ServerID: newServerID,
			WorkspaceID: id,
			Message:     fmt.Sprintf("workspace %s moved from %s to %s (epoch %d)", id, old.ServerID, newServerID, epoch),
			Data:        map[string]any{"from": old.ServerID, "to": newServerID, "epoch": epoch}})
		if err != nil {
			return err
		}
		if old.Status != w.Status {
			if err := statusEventTx(ctx, tx, w, old.Status); err != nil {
				return err
			}
		}
		out = w
		return nil
	})
	if err != nil {
		return Workspace{}, fmt.Errorf("move workspace: %w", err)
	}
	return out, nil
}

// ResizeWorkspace replaces the workspace's reservation with res (a tier
// change) in one write transaction, after checking that the growth
// (fleet.Growth: only the resources that grow, bandwidth never) fits what
// limits leave on its server (ErrInsufficientCapacity); shrinking always
// fits, even on a server an admin has shrunk below what is reserved.
// The server's state does not matter and the epoch is kept: the placement is
// the same. A workspace without a server just records res. It returns the row
// as stored.
func (db *DB) ResizeWorkspace(ctx context.Context, id string, res fleet.Resources, limits Limits) (Workspace, error) {
	if err := validateResources(res); err != nil {
		return Workspace{}, fmt.Errorf("resize workspace %q: %w", id, err)
	}
	if err := validateLimits(limits); err != nil {
		return Workspace{}, fmt.Errorf("resize workspace %q: %w", id, err)
	}
	var out Workspace
	err := db.writeTx(ctx, func(tx *wtx) error {
		w, err := getWorkspace(ctx, tx, id)
		if err != nil {
			return err
		}
		if w.ServerID != "" {
			used, err := serverUsageTx(ctx, tx, w.ServerID, id)
			if err != nil {
				return err
			}
			avail := limits.available(used.Reserved.Add(w.Reservation))
			if short, ok := fleet.Fits(avail, fleet.Growth(w.Reservation, res)); !ok {
				return fmt.Errorf("server %q: %s: %w", w.ServerID, short.Reason(), ErrInsufficientCapacity)
			}
		}
		was, err := storedOf(w)
		if err != nil {
			return err
		}
		w.Reservation, w.UpdatedAt = res, now()
		if err := writeWorkspaceTx(ctx, tx, was, w); err != nil {
			return err
		}
		out = w
		return nil
	})
	if err != nil {
		return Workspace{}, fmt.Errorf("resize workspace: %w", err)
	}
	return out, nil
}

// ServerUsage returns the reservations held on every registered server, in
// one query. Servers without workspaces are present with zero usage.
func (db *DB) ServerUsage(ctx context.Context) (map[string]Usage, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT s.id, COALESCE(SUM(w.res_cpu), 0), COALESCE(SUM(w.res_memory_mb), 0),
			COALESCE(SUM(w.res_disk_gb), 0), COALESCE(SUM(w.res_bandwidth_mbps), 0),
			COALESCE(SUM(w.res_gpu_count), 0), COUNT(w.id)
		FROM servers s LEFT JOIN workspaces w ON w.server_id = s.id
		GROUP BY s.id`)
	if err != nil {
		return nil, fmt.Errorf("server usage: %w", err)
	}
	defer rows.Close()
	usage := map[string]Usage{}
	for rows.Next() {
		var id string
		var u Usage
		if err := rows.Scan(&id, &u.Reserved.CPU, &u.Reserved.MemoryMB, &u.Reserved.DiskGB,
			&u.Reserved.BandwidthMbps, &u.Reserved.GPUCount, &u.Workspaces); err != nil {
			return nil, fmt.Errorf("server usage: %w", err)
		}
		usage[id] = u
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("server usage: %w", err)
	}
	return usage, nil
}
