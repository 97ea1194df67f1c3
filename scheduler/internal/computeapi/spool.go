package computeapi

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// spoolMemory is how much of a file write's content a spool holds in
// memory; beyond it, the content goes to a temporary file.
const spoolMemory = 1 << 20

// spool holds a file write's content until the whole request has been read
// and found valid, so that a broken or oversize request never touches the
// workspace's file: in memory up to spoolMemory bytes, then in a temporary
// file in dir. The file is unlinked as soon as it is created, so nothing
// is left behind whatever happens to the process; Close releases it.
// Beyond limit bytes, Write only counts: Size then tells how big the
// content was. Not safe for concurrent use.
type spool struct {
	dir   string
	limit int64
	mem   []byte
	f     *os.File
	n     int64 // bytes written, kept or not
}

func newSpool(dir string, limit int64) *spool { return &spool{dir: dir, limit: limit} }

// Write keeps p, or only counts it once the content is past the limit.
func (s *spool) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	switch {
	case s.n > s.limit:
		if err := s.release(); err != nil { // useless now: the write is refused
			return 0, fmt.Errorf("spool: %w", err)
		}
		return len(p), nil
	case s.f == nil && len(s.mem)+len(p) <= spoolMemory:
		s.mem = append(s.mem, p...)
		return len(p), nil
	case s.f == nil:
		f, err := os.CreateTemp(s.dir, "berth-write-*")
		if err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			return 0, fmt.Errorf("spool: unlink %s: %w", f.Name(), err)
		}
		s.f = f
		if _, err := f.Write(s.mem); err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		s.mem = nil
	}
	if _, err := s.f.Write(p); err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	return len(p), nil
}

// Size is the number of bytes written.
func (s *spool) Size() int64 { return s.n }

// memory is the content when it is all held in memory.
func (s *spool) memory() ([]byte, bool) {
	return s.mem, s.f == nil && s.n <= s.limit
}

// Reader reads the content from its start. It is an error once the
// content went past the limit.
func (s *spool) Reader() (io.Reader, error) {
	switch {
	case s.n > s.limit:
		return nil, fmt.Errorf("spool: %d bytes, past the limit of %d", s.n, s.limit)
	case s.f == nil:
		return bytes.NewReader(s.mem), nil
	}
	return io.NewSectionReader(s.f, 0, s.n), nil
}

// Close releases the memory and the temporary file. It is idempotent.
func (s *spool) Close() error { return s.release() }

func (s *spool) release() error {
	s.mem = nil
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
