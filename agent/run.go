package main

import (
	"context"

	"berth/agent/internal/config"

	"github.com/hashicorp/go-hclog"
)

func run(ctx context.Context, cfg config.Config, log hclog.Logger) error {
	log.Info("starting", "server_id", cfg.ServerID)
	<-ctx.Done()
	return nil
}
