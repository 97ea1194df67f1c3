package registry

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"
)

// Recording, for a replicated registry (see replicate.go). In a replicated
// registry a writer's work runs on the leader's file and is then rolled
// back; what it wrote travels as the statements it executed, with their
// arguments bound, and every node (the leader too) applies them in log
// order. wtx's ExecContext, QueryContext and QueryRowContext shadow
// *sql.Tx's so that every helper that writes through a wtx is recorded
// without knowing it.

// stmt is one recorded write statement.
type stmt struct {
	SQL  string
	Args []arg
	// Rows is the number of rows the statement changed on the leader, or -1
	// when it is not known (a statement read through QueryRow with
	// RETURNING). A node that applies it and changes another number has a
	// file that is not the leader's: see ErrDiverged.
	Rows int64
}

// arg is one bound argument, as the driver would receive it.
type arg struct {
	Kind byte // one of the argX constants
	I    int64
	F    float64
	S    string
	B    []byte
}

const (
	argNull byte = iota
	argInt
	argFloat
	argString
	argBytes
	argBool
)

// encodeArgs converts args as database/sql would (driver.Valuer, named
// integer and string types) and refuses what a statement must never get:
// a time.Time would be formatted by the driver, so times are passed as
// text (formatTime) everywhere in the registry.
func encodeArgs(args []any) ([]arg, error) {
	out := make([]arg, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a) // calls a driver.Valuer
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		switch v := v.(type) {
		case nil:
			out[i] = arg{Kind: argNull}
		case int64:
			out[i] = arg{Kind: argInt, I: v}
		case float64:
			out[i] = arg{Kind: argFloat, F: v}
		case string:
			out[i] = arg{Kind: argString, S: v}
		case []byte:
			out[i] = arg{Kind: argBytes, B: append([]byte(nil), v...)}
		case bool:
			out[i] = arg{Kind: argBool, I: map[bool]int64{false: 0, true: 1}[v]}
		case time.Time:
			return nil, fmt.Errorf("argument %d is a time.Time: pass formatTime's text", i)
		default:
			return nil, fmt.Errorf("argument %d has type %T", i, v)
		}
	}
	return out, nil
}

// decodeArgs turns recorded arguments back into driver values.
func decodeArgs(args []arg) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch a.Kind {
		case argInt:
			out[i] = a.I
		case argFloat:
			out[i] = a.F
		case argString:
			out[i] = a.S
		case argBytes:
			out[i] = a.B
		case argBool:
			out[i] = a.I != 0
		}
	}
	return out
}

// isWrite tells a statement that changes the database from a read: SELECT,
// and WITH without a data-changing keyword, are reads; the registry passes
// nothing else through a query that does not write.
func isWrite(query string) bool {
	q := strings.ToUpper(strings.TrimSpace(query))
	switch {
	case strings.HasPrefix(q, "SELECT"), strings.HasPrefix(q, "PRAGMA"):
		return false
	case strings.HasPrefix(q, "WITH"):
		for _, kw := range []string{"INSERT", "UPDATE", "DELETE", "REPLACE"} {
			if strings.Contains(q, kw) {
				return true
			}
		}
		return false
	}
	return true
}

// record notes a write statement when the transaction records.
func (t *wtx) record(query string, args []any, rows int64) {
	if t.rec == nil || t.recErr != nil {
		return
	}
	a, err := encodeArgs(args)
	if err != nil {
		t.recErr = fmt.Errorf("record %q: %w", firstLine(query), err)
		return
	}
	*t.rec = append(*t.rec, stmt{SQL: query, Args: a, Rows: rows})
}

// ExecContext runs a statement in the transaction and records it.
func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := t.Tx.ExecContext(ctx, query, args...)
	if err == nil && t.rec != nil {
		n, nerr := res.RowsAffected()
		if nerr != nil {
			n = -1
		}
		t.record(query, args, n)
	}
	return res, err
}

// QueryContext runs a query in the transaction, recording it if it writes.
func (t *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := t.Tx.QueryContext(ctx, query, args...)
	if err == nil && t.rec != nil && isWrite(query) {
		t.record(query, args, -1)
	}
	return rows, err
}

// QueryRowContext runs a query in the transaction, recording it if it
// writes (a RETURNING statement). Its error shows only at Scan; every
// registry helper returns that error, which drops the writer's recorded
// statements with its savepoint.
func (t *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if t.rec != nil && isWrite(query) {
		t.record(query, args, -1)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
