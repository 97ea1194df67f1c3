package computeapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
)

func TestFormatTime(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"microseconds", time.Date(2026, 1, 5, 10, 11, 12, 345678000, time.UTC), "2026-01-05T10:11:12.345678Z"},
		{"no fraction", time.Date(2026, 1, 5, 10, 11, 12, 0, time.UTC), "2026-01-05T10:11:12Z"},
		{"trailing zeros kept", time.Date(2026, 1, 5, 10, 11, 12, 500000000, time.UTC), "2026-01-05T10:11:12.500000Z"},
		{"nanoseconds truncated", time.Date(2026, 1, 5, 10, 11, 12, 123456789, time.UTC), "2026-01-05T10:11:12.123456Z"},
		{"below a microsecond is no fraction", time.Date(2026, 1, 5, 10, 11, 12, 999, time.UTC), "2026-01-05T10:11:12Z"},
		{"converted to UTC", time.Date(2026, 1, 5, 11, 11, 12, 0, cet), "2026-01-05T10:11:12Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatTime(tt.in); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFormatFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"}, {1, "1.0"}, {-2, "-2.0"}, {12.5, "12.5"}, {0.1, "0.1"}, {1e-4, "0.0001"}, {1e-5, "1e-05"},
		{1e-7, "1e-07"}, {123456789012345.6, "123456789012345.6"}, {1e15, "1000000000000000.0"}, {1e16, "1e+16"},
		{1.5e300, "1.5e+300"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := formatFloat(tt.in); got != tt.want {
				t.Errorf("formatFloat(%v): got %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	in := map[string]string{
		"GITHUB_TOKEN": "ghp", "gh_token": "x", "MY_SECRET_KEY": "s", "db_password": "p", "GIT_CREDENTIALS": "u:t",
		"git_credentials": "u:t", "TOKENIZER": "t", "SSH_AUTHORIZED_KEYS": "ssh-ed25519 AAA", "ENABLE_SSHD": "true",
		"GIT_CREDENTIALS_FILE": "/x", "PATH": "/bin",
	}
	want := map[string]string{
		"GITHUB_TOKEN": "***", "gh_token": "***", "MY_SECRET_KEY": "***", "db_password": "***", "GIT_CREDENTIALS": "***",
		"git_credentials": "***", "TOKENIZER": "***", "SSH_AUTHORIZED_KEYS": "ssh-ed25519 AAA", "ENABLE_SSHD": "true",
		"GIT_CREDENTIALS_FILE": "/x", "PATH": "/bin",
	}
	if diff := cmp.Diff(want, redact(in)); diff != "" {
		t.Errorf("redact (-want +got):\n%s", diff)
	}
	if in["GITHUB_TOKEN"] != "ghp" {
		t.Errorf("redact changed its input: got %q, want ghp", in["GITHUB_TOKEN"])
	}
	if got := redact(nil); got == nil || len(got) != 0 {
		t.Errorf("redact(nil): got %v, want an empty map", got)
	}
}

func TestPlacementDetail(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no servers registered", orchestrator.ErrNoServers, "No servers available for workspace creation"},
		{"no servers registered, wrapped", fmt.Errorf("create: %w", orchestrator.ErrNoServers),
			"No servers available for workspace creation"},
		{"region", &orchestrator.PlacementError{Cause: &placement.RegionError{Region: "eu"}, Region: "eu"},
			"No capacity available in eu region"},
		{"region, wrapped", fmt.Errorf("launch: %w", &orchestrator.PlacementError{Cause: &placement.RegionError{Region: "us-east"}}),
			"No capacity available in us-east region"},
		{"placement's region error alone", &placement.RegionError{Region: "eu"}, "No capacity available in eu region"},
		{"no healthy servers", &orchestrator.PlacementError{Cause: placement.ErrNoHealthyServers, Summary: "unhealthy on 2 servers"},
			"No healthy servers available"},
		{"no healthy servers, sentinel alone", placement.ErrNoHealthyServers, "No healthy servers available"},
		{"no capacity", &orchestrator.PlacementError{Cause: placement.ErrNoCapacity, Summary: "insufficient memory on 3 servers"},
			"No server has sufficient resources"},
		{"empty node list", &orchestrator.PlacementError{Cause: placement.ErrNoServers}, "No servers available"},
		{"the summary never leaks", &orchestrator.PlacementError{Cause: placement.ErrNoCapacity, Summary: "No capacity available in eu region"},
			"No server has sufficient resources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PlacementDetail(tt.err); got != tt.want {
				t.Errorf("PlacementDetail(%v): got %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestIncompleteTail(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0}, {"abc", 0}, {"a\xe2", 1}, {"a\xe2\x82", 2}, {"a\xe2\x82\xac", 0}, {"\xf0\x9f\x98", 3}, {"\xf0\x9f\x98\x80", 0},
		{"a\xff", 0}, {"a\x82", 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := incompleteTail([]byte(tt.in)); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
