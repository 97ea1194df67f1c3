package auth

import "testing"

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
