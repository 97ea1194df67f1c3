package auth

import (
	"net/http"
	"testing"
)

func TestEqual(t *testing.T) {
	tests := []struct {
		name      string
		got, want string
		ok        bool
	}{
		{"match", "s3cret-token", "s3cret-token", true},
		{"mismatch", "s3cret-tokem", "s3cret-token", false},
		{"prefix", "s3cret", "s3cret-token", false},
		{"unconfigured fails closed", "", "", false},
		{"empty given", "", "s3cret-token", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Equal(tt.got, tt.want); got != tt.ok {
				t.Errorf("Equal(%q, %q) = %v, want %v", tt.got, tt.want, got, tt.ok)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		header string
		token  string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"Bearer  abc ", "abc", true},
		{"bearer abc", "", false},
		{"Basic abc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		token, ok := Bearer(tt.header)
		if token != tt.token || ok != tt.ok {
			t.Errorf("Bearer(%q) = %q, %v; want %q, %v", tt.header, token, ok, tt.token, tt.ok)
		}
	}
}

func TestServiceTokenRotation(t *testing.T) {
	tests := []struct {
		name       string
		header     string
		want, next string
		wantStatus int // 0: accepted
	}{
		{"current accepted", "old-token", "old-token", "new-token", 0},
		{"next accepted", "new-token", "old-token", "new-token", 0},
		{"neither", "other", "old-token", "new-token", 401},
		{"no next configured", "new-token", "old-token", "", 401},
		{"empty given never matches an empty next", "", "old-token", "", 401},
		{"next alone does not configure the check", "new-token", "", "new-token", 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set(HeaderServiceToken, tt.header)
			got := 0
			if f := ServiceToken(r, tt.want, tt.next); f != nil {
				got = f.Status
			}
			if got != tt.wantStatus {
				t.Errorf("ServiceToken(%q; %q, %q) = %d, want %d", tt.header, tt.want, tt.next, got, tt.wantStatus)
			}
		})
	}
}
