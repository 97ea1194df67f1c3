// Command agent runs beside one Docker daemon: it measures the host, gossips
// its capacity, and serves the scheduler's container work over mTLS.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"berth/agent/internal/config"
	"berth/shared/logging"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := logging.New("agent", cfg.LogLevel, cfg.LogJSON)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("agent stopped", "error", err)
		os.Exit(1)
	}
}
