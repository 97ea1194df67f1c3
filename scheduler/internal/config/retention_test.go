package config

import (
	"strings"
	"testing"
	"time"
)

func TestEventRetention(t *testing.T) {
	env := map[string]string{"BERTH_TLS_CERT": "/c", "BERTH_TLS_KEY": "/k", "BERTH_TLS_CA": "/ca"}
	tests := []struct {
		name    string
		value   string // "" = not set
		want    time.Duration
		wantErr string
	}{
		{name: "default: 30 days", want: 30 * 24 * time.Hour},
		{name: "a week", value: "168h", want: 7 * 24 * time.Hour},
		{name: "0 keeps events forever", value: "0s", want: 0},
		{name: "negative", value: "-1h", wantErr: "event retention"},
		{name: "not a duration", value: "30d", wantErr: "BERTH_EVENT_RETENTION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "BERTH_EVENT_RETENTION" {
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
			if err != nil || c.EventRetention != tt.want {
				t.Errorf("got %s, %v; want %s", c.EventRetention, err, tt.want)
			}
		})
	}
}
