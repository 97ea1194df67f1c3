package logging

import (
	"io"
	"log"
	"os"

	"github.com/hashicorp/go-hclog"
)

// New returns the root logger for a binary. level is an hclog level name
// ("trace", "debug", "info", "warn", "error"); json selects JSON output.
func New(name, level string, json bool) hclog.Logger {
	return NewWriter(name, level, json, os.Stderr)
}

// NewWriter is New with an explicit output, for tests.
func NewWriter(name, level string, json bool, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           hclog.LevelFromString(level),
		JSONFormat:      json,
		Output:          w,
		IncludeLocation: false,
	})
}

// StdLogger bridges an hclog logger to a *log.Logger, inferring levels from
// the "[WARN]"-style prefixes memberlist writes.
func StdLogger(l hclog.Logger) *log.Logger {
	return l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true, InferLevelsWithTimestamp: true})
}
