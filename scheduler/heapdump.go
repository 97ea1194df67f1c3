package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// dumpHeapOnSignal writes a heap profile (go tool pprof) into dir each
// time the process receives SIGUSR1, until ctx ends: what an operator (or
// the footprint benchmark) reads to see where a running scheduler's memory
// goes, without a debug listener. The file is heap-<unix nanos>.pprof,
// readable by its owner only.
func dumpHeapOnSignal(ctx context.Context, dir string, log hclog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		}
		path := filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", time.Now().UnixNano()))
		if err := writeHeapProfile(path); err != nil {
			log.Warn("heap profile", "error", err)
			continue
		}
		log.Info("heap profile written", "path", path)
	}
}

// writeHeapProfile writes the profile under a temporary name and renames
// it: a file of the final name is whole.
func writeHeapProfile(path string) error {
	runtime.GC() // the profile's in-use figures are as of the last GC: make it now
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
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
