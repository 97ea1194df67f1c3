package config

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "104857600", want: 100 << 20},
		{in: "100MiB", want: 100 << 20},
		{in: " 100 mib ", want: 100 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "512KiB", want: 512 << 10},
		{in: "0", want: 0},
		{in: "100MB", wantErr: true},
		{in: "1.5GiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "", wantErr: true},
		{in: "9223372036854775807GiB", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseSize(%q): got %d, %v; want %d (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFileLimit(t *testing.T) {
	tests := []struct {
		name    string
		value   string // "" = not set
		want    int64
		wantErr string
	}{
		{name: "default", want: 100 << 20},
		{name: "bigger", value: "1GiB", want: 1 << 30},
		{name: "below 100 MiB", value: "99MiB", want: 99 << 20, wantErr: "file limit"},
		{name: "not a size", value: "lots", wantErr: "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := loadEnv(t, map[string]string{"BERTH_FILE_LIMIT": tt.value}, tt.wantErr)
			if ok && c.FileLimit != tt.want {
				t.Errorf("got %d, want %d", c.FileLimit, tt.want)
			}
		})
	}
}

// loadEnv loads and validates a Config from env on top of the settings
// every scheduler needs. With wantErr set it checks that the error names
// it and returns false; otherwise it fails on any error and returns true.
func loadEnv(t *testing.T, env map[string]string, wantErr string) (Config, bool) {
	t.Helper()
	base := map[string]string{"BERTH_TLS_CERT": "/c", "BERTH_TLS_KEY": "/k", "BERTH_TLS_CA": "/ca"}
	c, _, err := Load(nil, func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return base[k]
	})
	if err == nil {
		err = c.Validate()
	}
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("got %v, want an error about %s", err, wantErr)
		}
		return c, false
	}
	if err != nil {
		t.Errorf("load: %v", err)
		return c, false
	}
	return c, true
}
