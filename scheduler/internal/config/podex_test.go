package config

import (
	"testing"
	"time"
)

// The podex API peer and billing settings: defaults, the forms they take,
// and the values Validate refuses.
func TestPodexSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		{name: "defaults", check: func(c Config) bool {
			return c.ServerSyncInterval == 30*time.Second && c.APIHeartbeatInterval == 30*time.Second &&
				c.HardwareSpecsTTL == 5*time.Minute && c.APITimeout == 10*time.Second && c.APIAttempts == 3 &&
				c.BillingInterval == time.Minute && c.BillingFlushInterval == 5*time.Second && c.BillingBatch == 50 &&
				c.BillingRetention == 24*time.Hour
		}},
		{name: "seconds and durations", env: map[string]string{"COMPUTE_SERVER_SYNC_INTERVAL": "15", "BERTH_BILLING_INTERVAL": "10s",
			"BERTH_BILLING_BATCH": "10", "BERTH_API_ATTEMPTS": "5", "BERTH_HARDWARE_SPECS_TTL": "2m"},
			check: func(c Config) bool {
				return c.ServerSyncInterval == 15*time.Second && c.BillingInterval == 10*time.Second &&
					c.BillingBatch == 10 && c.APIAttempts == 5 && c.HardwareSpecsTTL == 2*time.Minute
			}},
		{name: "a billing interval under a second", env: map[string]string{"BERTH_BILLING_INTERVAL": "500ms"}, wantErr: "billing interval"},
		{name: "no attempt", env: map[string]string{"BERTH_API_ATTEMPTS": "0"}, wantErr: "api attempts"},
		{name: "not a number", env: map[string]string{"BERTH_BILLING_BATCH": "many"}, wantErr: "BERTH_BILLING_BATCH"},
		{name: "a zero interval", env: map[string]string{"BERTH_API_HEARTBEAT_INTERVAL": "0"}, wantErr: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, ok := loadEnv(t, tt.env, tt.wantErr); ok && !tt.check(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}
