package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// profileOnSignal writes a heap profile (go tool pprof) into dir each
// time the process receives SIGUSR1, and a profile of its CPU over the next
// cpuProfileFor each time it receives SIGUSR2, until ctx ends: what an
// operator (or the footprint benchmark) reads to see where a running
// scheduler's memory and CPU go, without a debug listener. The files are
// heap-<unix nanos>.pprof and cpu-<unix nanos>.pprof, readable by their
// owner only; a SIGUSR2 during a CPU profile is ignored, and a signal that
// comes while a heap profile is written may be lost (send it again).
func profileOnSignal(ctx context.Context, dir string, log hclog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
	var wg sync.WaitGroup
	defer wg.Wait() // a CPU profile ends with ctx
	cpuDone := make(chan struct{}, 1)
	cpuDone <- struct{}{} // no CPU profile running
	for {
		var s os.Signal
		select {
		case <-ctx.Done():
			return
		case s = <-sig:
		}
		if ctx.Err() != nil {
			return
		}
		if s == syscall.SIGUSR2 {
			select {
			case <-cpuDone:
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { cpuDone <- struct{}{} }()
					path := filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", time.Now().UnixNano()))
					if err := writeProfile(path, func(w io.Writer) error { return cpuProfile(ctx, w) }); err != nil {
						log.Warn("CPU profile", "error", err)
						return
					}
					log.Info("CPU profile written", "path", path)
				}()
			default:
			}
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", time.Now().UnixNano()))
		runtime.GC() // the profile's in-use figures are as of the last GC: make it now
		if err := writeProfile(path, pprof.WriteHeapProfile); err != nil {
			log.Warn("heap profile", "error", err)
			continue
		}
		log.Info("heap profile written", "path", path)
	}
}

// cpuProfileFor is how long a SIGUSR2 profiles the CPU.
const cpuProfileFor = 30 * time.Second

// cpuProfile profiles the CPU into w for cpuProfileFor, or until ctx ends.
func cpuProfile(ctx context.Context, w io.Writer) error {
	if err := pprof.StartCPUProfile(w); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	select {
	case <-ctx.Done():
	case <-time.After(cpuProfileFor):
	}
	return nil
}

// writeProfile writes a profile under a temporary name and renames it: a
// file of the final name is whole.
func writeProfile(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
