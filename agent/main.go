package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"berth/agent/internal/config"
	"berth/shared/logging"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "usage: agent [flags]  (each flag also reads its environment variable, or a line of the BERTH_CONFIG file)\n%s", config.Usage())
		return
	}
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
