package registry

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// timeLayout is the stored form of every time: fixed width, so text order is
// time order, UTC, microseconds.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// normTime is the value a time has after a round trip through the database.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// now is the current time as it will be stored.
func now() time.Time { return normTime(time.Now()) }

func formatTime(t time.Time) string { return normTime(t).Format(timeLayout) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

func parseNullTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	return parseTime(s.String)
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// encodeJSON marshals v for a JSON column. Empty maps and slices are stored as
// {} and [] (def), never null.
func encodeJSON(v any, isEmpty bool, def string) (string, error) {
	if isEmpty {
		return def, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode json: %w: %w", ErrInvalid, err)
	}
	return string(b), nil
}

func encodeStrings(v []string) (string, error) { return encodeJSON(v, len(v) == 0, "[]") }

func encodeStringMap(v map[string]string) (string, error) {
	return encodeJSON(v, len(v) == 0, "{}")
}

func encodeAnyMap(v map[string]any) (string, error) { return encodeJSON(v, len(v) == 0, "{}") }

// encodeSettings stores s as a JSON object without its empty fields: zero
// Settings are {}.
func encodeSettings(s Settings) (string, error) { return encodeJSON(s, false, "{}") }

func decodeSettings(s string) (Settings, error) {
	var v Settings
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return Settings{}, fmt.Errorf("stored settings: %w", err)
	}
	return v, nil
}

func decodeStrings(s string) ([]string, error) {
	v := []string{}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("stored json list: %w", err)
	}
	if v == nil {
		v = []string{}
	}
	return v, nil
}

func decodeStringMap(s string) (map[string]string, error) {
	v := map[string]string{}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("stored json object: %w", err)
	}
	if v == nil {
		v = map[string]string{}
	}
	return v, nil
}

func decodeAnyMap(s string) (map[string]any, error) {
	v := map[string]any{}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("stored json object: %w", err)
	}
	if v == nil {
		v = map[string]any{}
	}
	return v, nil
}

// isUniqueViolation reports whether err is a PRIMARY KEY or UNIQUE constraint
// failure.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey ||
		se.ExtendedCode == sqlite3.ErrConstraintUnique
}

// isForeignKeyViolation reports whether err is a FOREIGN KEY constraint failure.
func isForeignKeyViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// placeholders returns n comma-separated "?".
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// filter builds the WHERE clause of a list query from optional equalities:
// empty values match everything.
type filter struct {
	where []string
	args  []any
}

func (f *filter) eq(column, value string) {
	if value != "" {
		f.where = append(f.where, column+" = ?")
		f.args = append(f.args, value)
	}
}

// cond adds a condition without arguments, when on is set.
func (f *filter) cond(on bool, condition string) {
	if on {
		f.where = append(f.where, condition)
	}
}

// sql is " WHERE a = ? AND b = ?", or "" when nothing is filtered.
func (f *filter) sql() string {
	if len(f.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.where, " AND ")
}
