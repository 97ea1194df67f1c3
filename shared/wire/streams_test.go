package wire

import "testing"

func TestTTYExitReason(t *testing.T) {
	tests := []struct {
		reason   string
		wantCode int
		wantOK   bool
	}{
		{TTYExitReason(0), 0, true},
		{TTYExitReason(137), 137, true},
		{TTYExitReason(-1), -1, true},
		{"exit", 0, false},
		{"exit x", 0, false},
		{"exited 1", 0, false},
		{"agent shutting down", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			code, ok := ParseTTYExitReason(tt.reason)
			if code != tt.wantCode || ok != tt.wantOK {
				t.Errorf("ParseTTYExitReason(%q) = %d, %v, want %d, %v", tt.reason, code, ok, tt.wantCode, tt.wantOK)
			}
		})
	}
}

func TestIsInternalHeader(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"X-Internal-Service-Token", true},
		{"x-internal-service-token", true},
		{"X-User-Id", true},
		{"X-User-ID", true},
		{HeaderEpoch, true},
		{HeaderTTYRequest, true},
		{"x-berth-anything", true},
		{"X-Berth", false},
		{"X-Berthold", false},
		{"Authorization", false},
		{"X-User-Name", false},
		{"Cookie", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsInternalHeader(tt.name); got != tt.want {
				t.Errorf("IsInternalHeader(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
