package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"berth/scheduler/internal/app"
	"berth/scheduler/internal/config"
	"berth/shared/logging"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args)
	case "members":
		err = members(ctx, args)
	case "servers":
		err = servers(ctx, args)
	case "raft":
		err = raftCommand(ctx, args)
	case "backup":
		err = backup(ctx, args)
	case "check":
		err = check(ctx, args)
	case "terminal":
		err = terminalCommand(ctx, args)
	case "help", "-h", "--help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "scheduler %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: scheduler serve|members|servers|raft|backup FILE|check|terminal WORKSPACE_ID [flags]

Settings (flag, environment variable, meaning):
`+config.Usage())
}

func loadConfig(args []string) (config.Config, []string, error) {
	cfg, rest, err := config.Load(args, os.Getenv)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, rest, nil
}

func serve(ctx context.Context, args []string) error {
	cfg, _, err := loadConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return nil
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := logging.New("scheduler", cfg.LogLevel, cfg.LogJSON)
	ctx, cancel := context.WithCancel(ctx)
	dumped := make(chan struct{})
	go func() {
		defer close(dumped)
		profileOnSignal(ctx, cfg.DataDir, log.Named("debug"))
	}()
	defer func() { cancel(); <-dumped }()
	return app.Run(ctx, cfg, log)
}
