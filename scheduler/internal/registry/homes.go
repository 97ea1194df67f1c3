package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Home is where a workspace's home directory lives and whose it is. It
// outlives the workspace record (a DELETE keeps the data) and binds the id
// to its owner until the data is removed.
type Home struct {
	WorkspaceID string
	UserID      string
	// ServerID holds the live copy; "" when that server was removed from the
	// registry, so the data is gone for good.
	ServerID string
	// MovingTo is the server a move is copying the data to; "" when no move
	// is under way. The copy on ServerID stays the live one until the move
	// finishes.
	MovingTo string
	// Purge: the owner asked for the data to be removed; the cleanup loop
	// does it.
	Purge     bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Lost reports whether the server that held the data is gone for good.
func (h Home) Lost() bool { return h.ServerID == "" }

// Leftover is an old copy of a home left on a server after a verified move,
// to be removed once that server answers.
type Leftover struct {
	WorkspaceID string
	ServerID    string
	CreatedAt   time.Time
}

const homeColumns = "workspace_id, user_id, server_id, moving_to, purge, created_at, updated_at"

func scanHome(sc scanner) (Home, error) {
	var h Home
	var server, moving sql.NullString
	var created, updated string
	if err := sc.Scan(&h.WorkspaceID, &h.UserID, &server, &moving, &h.Purge, &created, &updated); err != nil {
		return Home{}, err
	}
	h.ServerID, h.MovingTo = server.String, moving.String
	var err error
	if h.CreatedAt, err = parseTime(created); err != nil {
		return Home{}, err
	}
	if h.UpdatedAt, err = parseTime(updated); err != nil {
		return Home{}, err
	}
	return h, nil
}

func getHome(ctx context.Context, q queryer, id string) (Home, error) {
	h, err := scanHome(q.QueryRowContext(ctx, "SELECT "+homeColumns+" FROM homes WHERE workspace_id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Home{}, fmt.Errorf("home %q: %w", id, ErrNotFound)
	}
	return h, err
}

// GetHome returns the home of workspace id, or ErrNotFound when the id has
// no data anywhere.
func (db *DB) GetHome(ctx context.Context, id string) (Home, error) {
	h, err := getHome(ctx, db.read, id)
	if err != nil {
		return Home{}, fmt.Errorf("get home: %w", err)
	}
	return h, nil
}

// HomeFilter selects homes for ListHomes. Empty fields match everything.
type HomeFilter struct {
	ServerID string
	Moving   bool // only homes with a move under way
	Purge    bool // only homes whose removal was requested
}

// ListHomes returns the homes matching f, by workspace id.
func (db *DB) ListHomes(ctx context.Context, f HomeFilter) ([]Home, error) {
	var w filter
	w.eq("server_id", f.ServerID)
	w.cond(f.Moving, "moving_to IS NOT NULL")
	w.cond(f.Purge, "purge = 1")
	q := "SELECT " + homeColumns + " FROM homes" + w.sql()
	rows, err := db.read.QueryContext(ctx, q+" ORDER BY workspace_id", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list homes: %w", err)
	}
	defer rows.Close()
	var out []Home
	for rows.Next() {
		h, err := scanHome(rows)
		if err != nil {
			return nil, fmt.Errorf("list homes: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list homes: %w", err)
	}
	return out, nil
}

// claimHomeTx binds workspace id to userID in the transaction that places
// it on serverID: a home of another owner is ErrOwnedByOther; a new home is
// recorded on serverID; a lost home (its server removed) starts anew there;
// a home elsewhere stays where it is until its move finishes. A pending
// purge is cancelled: the owner is using the id again.
func claimHomeTx(ctx context.Context, tx *wtx, id, userID, serverID string) error {
	h, err := getHome(ctx, tx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		at := formatTime(now())
		_, err := tx.ExecContext(ctx, "INSERT INTO homes ("+homeColumns+") VALUES (?, ?, ?, NULL, 0, ?, ?)",
			id, userID, serverID, at, at)
		return err
	case err != nil:
		return err
	case h.UserID != userID:
		return fmt.Errorf("home %q: %w", id, ErrOwnedByOther)
	}
	_, err = tx.ExecContext(ctx, `UPDATE homes SET server_id = COALESCE(server_id, ?), purge = 0, updated_at = ?
		WHERE workspace_id = ?`, serverID, formatTime(now()), id)
	return err
}

// BeginHomeMove records that the home of id is being copied to server to.
func (db *DB) BeginHomeMove(ctx context.Context, id, to string) error {
	return db.setHome(ctx, "begin home move", id, "moving_to = ?", to)
}

// AbortHomeMove records that the move of id's home ended without a
// verified copy: the copy on its server stays the live one.
func (db *DB) AbortHomeMove(ctx context.Context, id string) error {
	return db.setHome(ctx, "abort home move", id, "moving_to = NULL")
}

// FinishHomeMove makes the verified copy on server to the live one, in one
// write transaction: the old server's copy becomes a leftover to remove, and
// any leftover on to is forgotten (it is the live copy now).
func (db *DB) FinishHomeMove(ctx context.Context, id, to string) (Home, error) {
	var out Home
	err := db.writeTx(ctx, func(tx *wtx) error {
		h, err := getHome(ctx, tx, id)
		if err != nil {
			return err
		}
		at := formatTime(now())
		if h.ServerID != "" && h.ServerID != to {
			if err := addLeftoverTx(ctx, tx, id, h.ServerID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM home_leftovers WHERE workspace_id = ? AND server_id = ?", id, to); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE homes SET server_id = ?, moving_to = NULL, updated_at = ? WHERE workspace_id = ?",
			to, at, id); err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("server %q: %w", to, ErrNotFound)
			}
			return err
		}
		out, err = getHome(ctx, tx, id)
		return err
	})
	if err != nil {
		return Home{}, fmt.Errorf("finish home move: %w", err)
	}
	return out, nil
}

// RequestHomePurge asks the cleanup loop to remove the data of id, whose
// record is gone; only its owner may (ErrOwnedByOther otherwise).
func (db *DB) RequestHomePurge(ctx context.Context, id, userID string) error {
	err := db.writeTx(ctx, func(tx *wtx) error {
		h, err := getHome(ctx, tx, id)
		if err != nil {
			return err
		}
		if h.UserID != userID {
			return fmt.Errorf("home %q: %w", id, ErrOwnedByOther)
		}
		_, err = tx.ExecContext(ctx, "UPDATE homes SET purge = 1, updated_at = ? WHERE workspace_id = ?", formatTime(now()), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("request home purge: %w", err)
	}
	return nil
}

// DeleteHome forgets the home of id: its data has been removed, and the id
// is free for anyone. Its leftovers stay listed until they are removed too.
func (db *DB) DeleteHome(ctx context.Context, id string) error {
	err := db.writeTx(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM homes WHERE workspace_id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete home: %w", err)
	}
	return nil
}

// AddLeftover lists a copy of id's data on serverID for removal (an
// interrupted move's target, say). A server that is gone has nothing left.
func (db *DB) AddLeftover(ctx context.Context, id, serverID string) error {
	err := db.writeTx(ctx, func(tx *wtx) error { return addLeftoverTx(ctx, tx, id, serverID) })
	if err != nil {
		return fmt.Errorf("add leftover: %w", err)
	}
	return nil
}

func addLeftoverTx(ctx context.Context, tx *wtx, id, serverID string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO home_leftovers (workspace_id, server_id, created_at)
		VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, id, serverID, formatTime(now()))
	if isForeignKeyViolation(err) {
		return nil // the server is gone, and its data with it
	}
	return err
}

// ListLeftovers returns the old copies still to remove, oldest first.
func (db *DB) ListLeftovers(ctx context.Context) ([]Leftover, error) {
	rows, err := db.read.QueryContext(ctx,
		"SELECT workspace_id, server_id, created_at FROM home_leftovers ORDER BY created_at, workspace_id")
	if err != nil {
		return nil, fmt.Errorf("list leftovers: %w", err)
	}
	defer rows.Close()
	var out []Leftover
	for rows.Next() {
		var l Leftover
		var at string
		if err := rows.Scan(&l.WorkspaceID, &l.ServerID, &at); err != nil {
			return nil, fmt.Errorf("list leftovers: %w", err)
		}
		if l.CreatedAt, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("list leftovers: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list leftovers: %w", err)
	}
	return out, nil
}

// DeleteLeftover forgets an old copy once it has been removed.
func (db *DB) DeleteLeftover(ctx context.Context, id, serverID string) error {
	err := db.writeTx(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM home_leftovers WHERE workspace_id = ? AND server_id = ?", id, serverID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete leftover: %w", err)
	}
	return nil
}

func (db *DB) setHome(ctx context.Context, what, id, set string, args ...any) error {
	err := db.writeTx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, "UPDATE homes SET "+set+", updated_at = ? WHERE workspace_id = ?",
			append(args, formatTime(now()), id)...)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("home %q: unknown server: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("home %q: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ReleaseNewHome undoes the claim of a home that a failed create made for
// an id that had none: the row goes, and whatever directory the agent may
// have made on serverID becomes a leftover for the cleanup loop.
func (db *DB) ReleaseNewHome(ctx context.Context, id, serverID string) error {
	err := db.writeTx(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM homes WHERE workspace_id = ?", id); err != nil {
			return err
		}
		return addLeftoverTx(ctx, tx, id, serverID)
	})
	if err != nil {
		return fmt.Errorf("release new home: %w", err)
	}
	return nil
}
