package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"berth/scheduler/internal/fleet"
)

// EventServerUnlisted and EventServerListed are written by SyncAPIServers
// when the podex API's server list stops or starts again naming a server.
const (
	EventServerUnlisted = "server.unlisted"
	EventServerListed   = "server.listed"
)

// APISync is what one SyncAPIServers did, by server id.
type APISync struct {
	Added       []string // registered: the list named a server berth did not know
	Updated     []string // an address, port, region, architecture or image changed
	Cordoned    []string // no longer listed: cordoned (never deleted)
	Reactivated []string // listed again after the sync had cordoned it: active again
}

// Changed tells whether the sync changed anything.
func (s APISync) Changed() bool {
	return len(s.Added)+len(s.Updated)+len(s.Cordoned)+len(s.Reactivated) > 0
}

// SyncAPIServers applies one answer of the podex API's server list (the
// servers it says are active) in one write transaction:
//   - a server berth does not know is registered, active;
//   - a known server gets the fields the list carries (hostname, IP
//     address, agent port, architecture, region, TLS paths, images); its
//     name, labels, capacity overrides, limits, GPU and state stay as the
//     operator set them;
//   - a server an earlier list named and this one does not is cordoned if
//     it was active (it takes no new workspaces; its workspaces keep
//     running; it is never deleted), and activated again when a later list
//     names it, unless an operator changed its state meanwhile.
//
// Servers no list ever named (configuration, admin API) are left alone.
// A name clash with another server gives ErrConflict and changes nothing.
func (db *DB) SyncAPIServers(ctx context.Context, listed []Server, at time.Time) (APISync, error) {
	at = normTime(at)
	if at.IsZero() {
		at = now()
	}
	for i := range listed {
		if err := prepareServer(&listed[i]); err != nil {
			return APISync{}, fmt.Errorf("sync api servers: %w", err)
		}
	}
	var out APISync
	err := db.writeTx(ctx, func(tx *wtx) error {
		out = APISync{}
		names := map[string]bool{}
		for _, s := range listed {
			if names[s.ID] {
				continue // the first entry of an id wins
			}
			names[s.ID] = true
			if err := syncListedTx(ctx, tx, s, at, &out); err != nil {
				return err
			}
		}
		return unlistTx(ctx, tx, names, at, &out)
	})
	if err != nil {
		return APISync{}, fmt.Errorf("sync api servers: %w", err)
	}
	return out, nil
}

// apiFields are the columns the server list owns on a known server.
const apiFields = `hostname, ip_address, agent_port, architecture, region, tls_cert_path, tls_key_path, tls_ca_path,
	workspace_image, workspace_image_arm64, workspace_image_amd64, workspace_image_gpu`

func apiFieldArgs(s Server) []any {
	return []any{s.Hostname, s.IPAddress, s.AgentPort, s.Architecture, s.Region,
		nullString(s.TLSCertPath), nullString(s.TLSKeyPath), nullString(s.TLSCAPath),
		nullString(s.WorkspaceImage), nullString(s.WorkspaceImageARM64),
		nullString(s.WorkspaceImageAMD64), nullString(s.WorkspaceImageGPU)}
}

func syncListedTx(ctx context.Context, tx *wtx, s Server, at time.Time, out *APISync) error {
	cur, err := getServer(ctx, tx, s.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		if err := insertServerTx(ctx, tx, s); err != nil {
			return err
		}
		out.Added = append(out.Added, s.ID)
	case err != nil:
		return err
	default:
		curArgs, newArgs := apiFieldArgs(cur), apiFieldArgs(s)
		if !slices.Equal(curArgs, newArgs) {
			_, err := tx.ExecContext(ctx, "UPDATE servers SET ("+apiFields+", updated_at) = ("+
				placeholders(len(newArgs)+1)+") WHERE id = ?", append(newArgs, formatTime(at), s.ID)...)
			if err != nil {
				return err
			}
			tx.serverChanged(s.ID)
			out.Updated = append(out.Updated, s.ID)
		}
	}
	var listed, cordonedBySync bool
	err = tx.QueryRowContext(ctx, "SELECT listed, cordoned_by_sync FROM api_servers WHERE server_id = ?", s.ID).
		Scan(&listed, &cordonedBySync)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, `INSERT INTO api_servers (server_id, listed, first_listed_at, last_listed_at)
			VALUES (?, 1, ?, ?)`, s.ID, formatTime(at), formatTime(at))
		return err
	case err != nil:
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE api_servers SET listed = 1, cordoned_by_sync = 0, last_listed_at = ?
		WHERE server_id = ?`, formatTime(at), s.ID); err != nil {
		return err
	}
	if !listed {
		msg := fmt.Sprintf("server %s is listed by the podex API again", s.ID)
		if cordonedBySync && cur.State == fleet.StateCordoned {
			if err := setServerStateTx(ctx, tx, s.ID, fleet.StateActive); err != nil {
				return err
			}
			out.Reactivated = append(out.Reactivated, s.ID)
			msg += ": active again"
		}
		_, err := addEventTx(ctx, tx, Event{At: at, Kind: EventServerListed, ServerID: s.ID, Message: msg})
		return err
	}
	return nil
}

// unlistTx cordons the active servers an earlier list named and this one
// (names) does not.
func unlistTx(ctx context.Context, tx *wtx, names map[string]bool, at time.Time, out *APISync) error {
	listed, err := listedTx(ctx, tx)
	if err != nil {
		return err
	}
	for _, r := range listed {
		if names[r.id] {
			continue
		}
		cordon := r.state == fleet.StateActive
		if _, err := tx.ExecContext(ctx, "UPDATE api_servers SET listed = 0, cordoned_by_sync = ? WHERE server_id = ?",
			cordon, r.id); err != nil {
			return err
		}
		msg := fmt.Sprintf("server %s is no longer listed by the podex API", r.id)
		if cordon {
			if err := setServerStateTx(ctx, tx, r.id, fleet.StateCordoned); err != nil {
				return err
			}
			out.Cordoned = append(out.Cordoned, r.id)
			msg += ": cordoned (its workspaces keep running)"
		}
		if _, err := addEventTx(ctx, tx, Event{At: at, Kind: EventServerUnlisted, ServerID: r.id, Message: msg}); err != nil {
			return err
		}
	}
	return nil
}

type listedServer struct {
	id    string
	state fleet.State
}

// listedTx returns the servers the last list named, with their state.
func listedTx(ctx context.Context, tx *wtx) ([]listedServer, error) {
	rows, err := tx.QueryContext(ctx, `SELECT a.server_id, s.state FROM api_servers a JOIN servers s ON s.id = a.server_id
		WHERE a.listed = 1 ORDER BY s.seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []listedServer
	for rows.Next() {
		var r listedServer
		if err := rows.Scan(&r.id, &r.state); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// setServerStateTx changes a server's state and records it as UpdateServer
// does.
func setServerStateTx(ctx context.Context, tx *wtx, id string, state fleet.State) error {
	var old fleet.State
	if err := tx.QueryRowContext(ctx, "SELECT state FROM servers WHERE id = ?", id).Scan(&old); err != nil {
		return err
	}
	if old == state {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE servers SET state = ?, updated_at = ? WHERE id = ?",
		state, formatTime(now()), id); err != nil {
		return err
	}
	tx.serverChanged(id)
	_, err := addEventTx(ctx, tx, Event{Kind: EventServerState, ServerID: id,
		Message: fmt.Sprintf("server %s: state %s -> %s", id, old, state),
		Data:    map[string]any{"from": string(old), "to": string(state)}})
	return err
}

// APIServer is what the registry knows of a server the podex API listed.
type APIServer struct {
	ServerID       string
	Listed         bool // the last list named it
	CordonedBySync bool
	FirstListedAt  time.Time
	LastListedAt   time.Time
}

// ListAPIServers returns the servers a podex API list has named.
func (db *DB) ListAPIServers(ctx context.Context) ([]APIServer, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT a.server_id, a.listed, a.cordoned_by_sync, a.first_listed_at, a.last_listed_at
		FROM api_servers a JOIN servers s ON s.id = a.server_id ORDER BY s.seq`)
	if err != nil {
		return nil, fmt.Errorf("list api servers: %w", err)
	}
	defer rows.Close()
	out := []APIServer{}
	for rows.Next() {
		var a APIServer
		var first, last string
		if err := rows.Scan(&a.ServerID, &a.Listed, &a.CordonedBySync, &first, &last); err != nil {
			return nil, fmt.Errorf("list api servers: %w", err)
		}
		if a.FirstListedAt, err = parseTime(first); err != nil {
			return nil, err
		}
		if a.LastListedAt, err = parseTime(last); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
