package dockerfake_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"berth/agent/internal/docker"
	"berth/agent/internal/docker/dockerfake"
	"berth/shared/wire"

	"github.com/google/go-cmp/cmp"
)

var _ dockerfake.TTYFunc = dockerfake.EchoTTY

// readN reads exactly n bytes of r, failing the test after a deadline.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, n)
		k, _ := io.ReadFull(r, b)
		got <- string(b[:k])
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("no %d bytes within 5s", n)
		return ""
	}
}

func TestTTYEcho(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	tty, err := f.ExecTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"bash"}, Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tty.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, tty, 5); got != "hello" {
		t.Errorf("read back: got %q, want hello", got)
	}
	if err := tty.Resize(ctx, 40, 120); err != nil {
		t.Fatal(err)
	}
	if err := tty.Resize(ctx, 0, 120); !errors.Is(err, docker.ErrBadRequest) {
		t.Errorf("resize to 0 rows: got %v, want ErrBadRequest", err)
	}
	terms := f.Terminals()
	if len(terms) != 1 {
		t.Fatalf("terminals: got %d, want 1", len(terms))
	}
	term := terms[0]
	if diff := cmp.Diff([]dockerfake.Size{{Rows: 40, Cols: 120}}, term.Resizes()); diff != "" {
		t.Errorf("resizes (-want +got):\n%s", diff)
	}
	if got := <-term.Resized(); got != (dockerfake.Size{Rows: 40, Cols: 120}) {
		t.Errorf("resized: got %v", got)
	}
	if term.ContainerID != c.ID || term.Req.Rows != 24 || term.Closed() {
		t.Errorf("terminal: got container %s request %+v closed %v", term.ContainerID, term.Req, term.Closed())
	}
	if err := tty.Close(); err != nil {
		t.Fatal(err)
	}
	if !term.Closed() {
		t.Error("Closed after Close: got false")
	}
	code, err := tty.Wait(ctx)
	if err != nil || code != 0 {
		t.Errorf("Wait: got %d, %v, want 0 (the echo's input ended)", code, err)
	}
	if _, err := tty.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Read after Close: got %v, want a closed-pipe error", err)
	}
}

func TestTTYHookExit(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	f.SetTTY(func(_ context.Context, _ wire.Container, req wire.TTYRequest, term *dockerfake.Terminal) int {
		_, _ = io.WriteString(term, "bye "+req.User)
		return 5
	})
	tty, err := f.ExecTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"sh"}, User: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out, err := io.ReadAll(tty)
	if err != nil || string(out) != "bye dev" {
		t.Errorf("output: got %q, %v, want \"bye dev\" then io.EOF", out, err)
	}
	if code, err := tty.Wait(ctx); err != nil || code != 5 {
		t.Errorf("Wait: got %d, %v, want 5", code, err)
	}
	if err := tty.Resize(ctx, 10, 10); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("resize after exit: got %v, want ErrConflict", err)
	}
}

// Stopping the container ends its terminals: the output ends (io.EOF) and
// the exit code is that of a SIGKILL.
func TestTTYEndsWithContainer(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	f.SetTTY(func(ctx context.Context, _ wire.Container, _ wire.TTYRequest, _ *dockerfake.Terminal) int {
		<-ctx.Done()
		return 0
	})
	tty, err := f.ExecTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if err := f.Stop(ctx, c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(tty); err != nil || len(out) != 0 {
		t.Errorf("output: got %q, %v, want io.EOF", out, err)
	}
	if code, err := tty.Wait(ctx); err != nil || code != dockerfake.KilledTTYExitCode {
		t.Errorf("Wait: got %d, %v, want %d", code, err, dockerfake.KilledTTYExitCode)
	}
}

func TestTTYAndAddressRefusals(t *testing.T) {
	f := dockerfake.New("srv-1")
	stopped := mustCreate(t, f, wire.CreateContainerRequest{Name: "stopped", Image: "img"})
	running := mustCreate(t, f, startedReq)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"tty in a stopped container", func() error {
			_, err := f.ExecTTY(ctx, stopped.ID, wire.TTYRequest{Cmd: []string{"bash"}})
			return err
		}, docker.ErrConflict},
		{"tty in a missing container", func() error {
			_, err := f.ExecTTY(ctx, "nope", wire.TTYRequest{Cmd: []string{"bash"}})
			return err
		}, docker.ErrNotFound},
		{"tty without a command", func() error {
			_, err := f.ExecTTY(ctx, running.ID, wire.TTYRequest{})
			return err
		}, docker.ErrBadRequest},
		{"address of a stopped container", func() error { _, err := f.Address(ctx, stopped.ID); return err }, docker.ErrConflict},
		{"address of a missing container", func() error { _, err := f.Address(ctx, "nope"); return err }, docker.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAddress(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	if got, err := f.Address(ctx, c.ID); err != nil || got != dockerfake.DefaultAddress {
		t.Errorf("default: got %q, %v, want %q", got, err, dockerfake.DefaultAddress)
	}
	f.SetAddress("10.1.2.3")
	if got, err := f.Address(ctx, c.ID); err != nil || got != "10.1.2.3" {
		t.Errorf("after SetAddress: got %q, %v, want 10.1.2.3", got, err)
	}
	f.SetAddress("")
	if _, err := f.Address(ctx, c.ID); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("without an address: got %v, want ErrConflict", err)
	}
}
