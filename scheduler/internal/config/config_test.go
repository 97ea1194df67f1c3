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
	env := map[string]string{"BERTH_TLS_CERT": "/c", "BERTH_TLS_KEY": "/k", "BERTH_TLS_CA": "/ca"}
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
			getenv := func(k string) string {
				if k == "BERTH_FILE_LIMIT" {
					return tt.value
				}
				return env[k]
			}
			c, _, err := Load(nil, getenv)
			if err == nil {
				err = c.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %v, want an error about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.FileLimit != tt.want {
				t.Errorf("got %d, %v; want %d", c.FileLimit, err, tt.want)
			}
		})
	}
}
