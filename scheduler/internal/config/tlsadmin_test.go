package config

import (
	"testing"
	"time"
)

// The listener TLS and admin settings load from the environment and are
// validated together.
func TestTLSAdminSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		{name: "defaults: plain HTTP, one listener, 12h/1h sessions, open metrics", check: func(c Config) bool {
			return c.HTTPTLSCert == "" && c.AdminListen == "" && !c.SecureCookie && c.SessionTTL == 12*time.Hour &&
				c.SessionIdle == time.Hour && c.MetricsToken == ""
		}},
		{name: "all set", env: map[string]string{"BERTH_HTTP_TLS_CERT": "/h.crt", "BERTH_HTTP_TLS_KEY": "/h.key",
			"BERTH_ADMIN_LISTEN": "127.0.0.1:3004", "BERTH_ADMIN_SECURE_COOKIE": "true", "BERTH_ADMIN_SESSION_TTL": "8h",
			"BERTH_ADMIN_SESSION_IDLE": "30m", "BERTH_METRICS_TOKEN": "m"},
			check: func(c Config) bool {
				return c.HTTPTLSCert == "/h.crt" && c.HTTPTLSKey == "/h.key" && c.AdminListen == "127.0.0.1:3004" && c.SecureCookie &&
					c.SessionTTL == 8*time.Hour && c.SessionIdle == 30*time.Minute && c.MetricsToken == "m"
			}},
		{name: "certificate without key", env: map[string]string{"BERTH_HTTP_TLS_CERT": "/h.crt"}, wantErr: "BERTH_HTTP_TLS_KEY"},
		{name: "admin listen not an address", env: map[string]string{"BERTH_ADMIN_LISTEN": "3004"}, wantErr: "BERTH_ADMIN_LISTEN"},
		{name: "admin listen same as listen", env: map[string]string{"BERTH_LISTEN": ":3003", "BERTH_ADMIN_LISTEN": ":3003"},
			wantErr: "must differ"},
		{name: "idle above ttl", env: map[string]string{"BERTH_ADMIN_SESSION_TTL": "1h", "BERTH_ADMIN_SESSION_IDLE": "2h"},
			wantErr: "BERTH_ADMIN_SESSION_IDLE"},
		{name: "secure cookie not a bool", env: map[string]string{"BERTH_ADMIN_SECURE_COOKIE": "yes please"}, wantErr: "invalid syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, ok := loadEnv(t, tt.env, tt.wantErr); ok && !tt.check(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}
