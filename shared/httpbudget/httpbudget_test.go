package httpbudget

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKeysAndValidate(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Timeouts
		wantErr string // "" = valid
	}{
		{"defaults", nil, Default(), ""},
		{"durations and seconds", map[string]string{"BERTH_HTTP_READ_HEADER_TIMEOUT": "5s", "BERTH_HTTP_READ_TIMEOUT": "30",
			"BERTH_HTTP_WRITE_TIMEOUT": "1m", "BERTH_HTTP_IDLE_TIMEOUT": "45s", "BERTH_HTTP_STALL_TIMEOUT": "90s",
			"BERTH_HTTP_MAX_HEADER_BYTES": "16384"},
			Timeouts{ReadHeader: 5 * time.Second, Read: 30 * time.Second, Write: time.Minute, Idle: 45 * time.Second,
				Stall: 90 * time.Second, MaxHeaderBytes: 16 << 10}, ""},
		{"zero timeout", map[string]string{"BERTH_HTTP_IDLE_TIMEOUT": "0"}, func() Timeouts { d := Default(); d.Idle = 0; return d }(),
			"BERTH_HTTP_IDLE_TIMEOUT 0s: must be positive"},
		{"header limit too small", map[string]string{"BERTH_HTTP_MAX_HEADER_BYTES": "100"},
			func() Timeouts { d := Default(); d.MaxHeaderBytes = 100; return d }(), "BERTH_HTTP_MAX_HEADER_BYTES 100: want 4096 to 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Default()
			for _, k := range Keys(&got) {
				if v, ok := tt.env[k.Env]; ok {
					if err := k.Set(v); err != nil {
						t.Fatalf("%s=%s: %v", k.Env, v, err)
					}
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("timeouts (-want +got):\n%s", diff)
			}
			err := got.Validate(EnvPrefix)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
