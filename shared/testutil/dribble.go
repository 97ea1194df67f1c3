package testutil

import (
	"io"
	"time"
)

// Dribble plays a slow client: it writes prefix, then one filler every
// 50 ms, never the end, until a write fails (the server closed the
// connection). The pace is the client's behaviour under test, not a
// synchronisation.
func Dribble(w io.Writer, prefix, filler string) error {
	if _, err := io.WriteString(w, prefix); err != nil {
		return err
	}
	for {
		time.Sleep(50 * time.Millisecond)
		if _, err := io.WriteString(w, filler); err != nil {
			return err
		}
	}
}
