package config

import (
	"testing"
	"time"
)

func TestEventRetention(t *testing.T) {
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
			env := map[string]string{}
			if tt.value != "" {
				env["BERTH_EVENT_RETENTION"] = tt.value
			}
			c, ok := loadEnv(t, env, tt.wantErr)
			if ok && c.EventRetention != tt.want {
				t.Errorf("got %s, want %s", c.EventRetention, tt.want)
			}
		})
	}
}
