package gitsetup

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/registry"
)

func TestCredentialStore(t *testing.T) {
	repos := []string{"https://github.com/acme/api.git", "https://github.com/acme/web", "http://10.0.0.5:8080/x/lib.git",
		"git@github.com:acme/ssh-only.git"}
	tests := []struct {
		name    string
		repos   []string
		creds   string
		want    string // the store file; "" = none
		wantErr error
	}{
		{name: "none", repos: repos},
		{name: "user:token for every http(s) host, once each", repos: repos, creds: "ada:ghp_T0ken",
			want: "https://ada:ghp_T0ken@github.com\nhttp://ada:ghp_T0ken@10.0.0.5:8080\n"},
		{name: "a bare token gets x-access-token", repos: repos[:1], creds: "ghp_T0ken",
			want: "https://x-access-token:ghp_T0ken@github.com\n"},
		{name: "characters of the URL syntax are percent-encoded", repos: repos[:1], creds: "a@b:p@ss:w/rd?+%#",
			want: "https://a%40b:p%40ss%3Aw%2Frd%3F+%25%23@github.com\n"},
		{name: "spaces around are dropped", repos: repos[:1], creds: "  ada:tok\n",
			want: "https://ada:tok@github.com\n"},
		{name: "no http(s) repo: nothing to store", repos: repos[3:], creds: "ada:tok"},
		{name: "URLs, each for its host", repos: repos, creds: "https://ada:t1@github.com/acme\nhttps://bob:t2@gitlab.com\n",
			want: "https://ada:t1@github.com\nhttps://bob:t2@gitlab.com\n"},
		{name: "a URL without a user is refused, the others kept", repos: repos, creds: "https://github.com\nhttps://bob:t2@gitlab.com",
			want: "https://bob:t2@gitlab.com\n", wantErr: ErrInvalidCredentials},
		{name: "user info in an entry comes first for its host", repos: []string{"https://own:t0@github.com/a/x.git", "https://github.com/a/y.git"},
			creds: "ada:tok", want: "https://own:t0@github.com\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlan(tt.repos, registry.Settings{}, tt.creds)
			if !errors.Is(p.CredentialsErr, tt.wantErr) || (tt.wantErr == nil) != (p.CredentialsErr == nil) {
				t.Errorf("error: got %v, want %v", p.CredentialsErr, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, string(p.store)); d != "" {
				t.Errorf("store file (-want +got):\n%s", d)
			}
			if (tt.want == "") != (p.haveStore() == "0") {
				t.Errorf("haveStore: got %s for a store of %d bytes", p.haveStore(), len(p.store))
			}
		})
	}
}

func TestRedact(t *testing.T) {
	p := NewPlan([]string{"https://github.com/acme/api.git", "https://own:Emb3dded@git.example.com/x.git"}, registry.Settings{},
		"ada:p@ss w/rd+T0k")
	tests := []struct{ in, want string }{
		{"fatal: Authentication failed for 'https://github.com/acme/api.git/'", "fatal: Authentication failed for 'https://github.com/acme/api.git/'"},
		{"token p@ss w/rd+T0k leaked", "token *** leaked"},
		{"as in the store p%40ss%20w%2Frd+T0k", "as in the store ***"},
		{"path-escaped p@ss%20w%2Frd+T0k", "path-escaped ***"},
		{"query-escaped p%40ss+w%2Frd%2BT0k", "query-escaped ***"},
		{"url https://ada:anything@github.com/x", "url https://github.com/x"},
		{"embedded Emb3dded", "embedded ***"},
		{"the user name ada stays", "the user name ada stays"},
	}
	for _, tt := range tests {
		if got := p.red.redact(tt.in); got != tt.want {
			t.Errorf("redact(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
	if strings.Contains(p.red.redact(string(p.store)), "T0k") {
		t.Errorf("the store file redacted still shows the token: %q", p.red.redact(string(p.store)))
	}
}
