package dockerfake

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"berth/agent/internal/docker"
	"berth/shared/wire"
)

// DefaultAddress is the address Address answers for a running container
// until SetAddress changes it: this machine, where a test's own server
// listens.
const DefaultAddress = "127.0.0.1"

// KilledTTYExitCode is the exit code of a TTY whose container stopped
// under it (SIGKILL).
const KilledTTYExitCode = 137

// TTYFunc plays the process of a TTY exec: it reads the terminal's input
// from term and writes the terminal's output to it, and returns the exit
// code. ctx ends when the session is closed or the container stops; a
// TTYFunc must then return (term's Read fails at the same moment).
type TTYFunc func(ctx context.Context, c wire.Container, req wire.TTYRequest, term *Terminal) (exitCode int)

// EchoTTY is the default TTYFunc: what is written is read back, until the
// input ends; it exits 0.
func EchoTTY(_ context.Context, _ wire.Container, _ wire.TTYRequest, term *Terminal) int {
	_, _ = io.Copy(term, term)
	return 0
}

// Size is a terminal size.
type Size struct{ Rows, Cols uint16 }

// Terminal is the process's side of a fake TTY exec: Read returns the input
// the client wrote (io.EOF once the client closed), Write sends output to the
// client (it blocks until the client reads it, as a full terminal does). It
// records the request, the sizes and whether the client closed it. It is
// safe for concurrent use.
type Terminal struct {
	ContainerID string
	Req         wire.TTYRequest

	in  *io.PipeReader // the client's input
	out *io.PipeWriter // output to the client

	mu      sync.Mutex
	size    Size
	resizes []Size
	resized chan Size // buffered; a resize finding it full is only recorded
	closed  bool
}

func (t *Terminal) Read(p []byte) (int, error)  { return t.in.Read(p) }
func (t *Terminal) Write(p []byte) (int, error) { return t.out.Write(p) }

// Size is the terminal's current size (zero until one was given).
func (t *Terminal) Size() Size { t.mu.Lock(); defer t.mu.Unlock(); return t.size }

// Resizes lists the sizes Resize set, in order (not the initial one).
func (t *Terminal) Resizes() []Size { t.mu.Lock(); defer t.mu.Unlock(); return slices.Clone(t.resizes) }

// Resized delivers each resize as it happens (up to 64 not yet received
// are kept), for a TTYFunc that reacts to them.
func (t *Terminal) Resized() <-chan Size { return t.resized }

// Closed reports whether the client closed the session.
func (t *Terminal) Closed() bool { t.mu.Lock(); defer t.mu.Unlock(); return t.closed }

// SetAddress makes Address answer addr for every running container ("" for
// none: a running container without a network address).
func (f *Fake) SetAddress(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.address = addr
	for _, e := range f.containers {
		if e.c.State == "running" {
			e.c.IPAddress = addr
		}
	}
}

// SetTTY replaces the TTY hook; nil restores EchoTTY.
func (f *Fake) SetTTY(fn TTYFunc) {
	if fn == nil {
		fn = EchoTTY
	}
	f.mu.Lock()
	f.tty = fn
	f.mu.Unlock()
}

// Terminals lists every TTY session opened so far, oldest first.
func (f *Fake) Terminals() []*Terminal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.terminals)
}

// Address is docker.AddressOf the container as Inspect shows it: a running
// container's IPAddress is the SetAddress address (DefaultAddress unless
// changed), so that the agent's proxy reaches a server the test runs.
func (f *Fake) Address(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.ownedLocked(id)
	if err != nil {
		return "", err
	}
	return docker.AddressOf(e.c)
}

// ExecTTY starts the TTY hook in a running container (docker.ErrConflict
// otherwise) on a new Terminal. The hook runs until it returns; stopping or
// removing the container, or closing the TTY, ends its context (and a
// container stop makes the exit code KilledTTYExitCode).
func (f *Fake) ExecTTY(_ context.Context, id string, req wire.TTYRequest) (docker.TTY, error) {
	if err := docker.ValidateTTY(req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	e, err := f.runningLocked(id)
	if err != nil {
		f.mu.Unlock()
		return nil, err
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	term := &Terminal{ContainerID: e.c.ID, Req: req, in: inR, out: outW, resized: make(chan Size, 64),
		size: Size{Rows: req.Rows, Cols: req.Cols}}
	ctx, cancel := context.WithCancel(context.Background())
	s := &fakeTTY{term: term, in: inW, out: outR, cancel: cancel, done: make(chan struct{})}
	f.terminals = append(f.terminals, term)
	e.ttys = append(e.ttys, s)
	c, hook := copyContainer(e.c), f.tty
	f.mu.Unlock()

	go func() { // owned by the session: ends when the hook returns
		defer close(s.done)
		code := hook(ctx, c, req, term)
		s.mu.Lock()
		if s.killed {
			code = KilledTTYExitCode
		}
		s.code = code
		s.mu.Unlock()
		inR.CloseWithError(io.ErrClosedPipe)
		outW.Close() // the client reads io.EOF
	}()
	return s, nil
}

// fakeTTY is the client's side of a fake TTY exec (docker.TTY).
type fakeTTY struct {
	term   *Terminal
	in     *io.PipeWriter // input to the hook
	out    *io.PipeReader // the hook's output
	cancel context.CancelFunc
	done   chan struct{} // closed when the hook returned

	mu     sync.Mutex
	code   int
	killed bool
}

func (s *fakeTTY) Read(p []byte) (int, error)  { return s.out.Read(p) }
func (s *fakeTTY) Write(p []byte) (int, error) { return s.in.Write(p) }

func (s *fakeTTY) Resize(_ context.Context, rows, cols uint16) error {
	if err := docker.ValidateTTYSize(rows, cols); err != nil {
		return err
	}
	select {
	case <-s.done:
		return fmt.Errorf("%w: resize tty: the process has exited", docker.ErrConflict)
	default:
	}
	t, size := s.term, Size{Rows: rows, Cols: cols}
	t.mu.Lock()
	t.size = size
	t.resizes = append(t.resizes, size)
	t.mu.Unlock()
	select {
	case t.resized <- size:
	default:
	}
	return nil
}

func (s *fakeTTY) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.code, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("wait for tty exec: %w", ctx.Err())
	}
}

// Close ends the session: the hook's input ends, its output fails, its
// context ends.
func (s *fakeTTY) Close() error {
	s.term.mu.Lock()
	s.term.closed = true
	s.term.mu.Unlock()
	s.in.Close()
	s.out.CloseWithError(io.ErrClosedPipe)
	s.cancel()
	return nil
}

// kill ends the session as a container stop does.
func (s *fakeTTY) kill() {
	s.mu.Lock()
	s.killed = true
	s.mu.Unlock()
	s.in.Close()
	s.term.out.Close() // the client reads io.EOF, the hook's writes fail
	s.cancel()
}
