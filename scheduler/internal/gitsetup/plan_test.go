package gitsetup

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/registry"
)

func TestParseRepo(t *testing.T) {
	tests := []struct {
		name, entry string
		wantURL     string
		wantName    string
		wantHost    string // credHost
		wantUser    string // user info the entry carried, as the store writes it
		wantErr     error
	}{
		{name: "https with .git", entry: "https://github.com/acme/api.git", wantURL: "https://github.com/acme/api.git",
			wantName: "api", wantHost: "https://github.com"},
		{name: "https without .git", entry: "https://github.com/acme/web", wantURL: "https://github.com/acme/web",
			wantName: "web", wantHost: "https://github.com"},
		{name: "trailing slash", entry: "https://git.example.com/team/tool.git/", wantURL: "https://git.example.com/team/tool.git/",
			wantName: "tool", wantHost: "https://git.example.com"},
		{name: "repo/.git", entry: "https://git.example.com/team/tool/.git", wantURL: "https://git.example.com/team/tool/.git",
			wantName: "tool", wantHost: "https://git.example.com"},
		{name: "http with a port, scheme in capitals", entry: "HTTP://10.0.0.5:8080/x/data-set_1.git",
			wantURL: "http://10.0.0.5:8080/x/data-set_1.git", wantName: "data-set_1", wantHost: "http://10.0.0.5:8080"},
		{name: "spaces around", entry: "  https://github.com/acme/api  ", wantURL: "https://github.com/acme/api", wantName: "api",
			wantHost: "https://github.com"},
		{name: "user and token in the URL move to the store", entry: "https://ada:s3cret@github.com/acme/api.git",
			wantURL: "https://github.com/acme/api.git", wantName: "api", wantHost: "https://github.com", wantUser: "ada:s3cret"},
		{name: "token as the user", entry: "https://ghp_tok3n@github.com/acme/api.git",
			wantURL: "https://github.com/acme/api.git", wantName: "api", wantHost: "https://github.com", wantUser: "ghp_tok3n"},
		{name: "ssh URL keeps its user, loses a password", entry: "ssh://git:pw@git.example.com:2222/team/infra.git",
			wantURL: "ssh://git@git.example.com:2222/team/infra.git", wantName: "infra"},
		{name: "git protocol", entry: "git://git.example.com/pub/lib.git", wantURL: "git://git.example.com/pub/lib.git", wantName: "lib"},
		{name: "scp-like", entry: "git@github.com:acme/api.git", wantURL: "git@github.com:acme/api.git", wantName: "api"},
		{name: "scp-like without a user", entry: "github.com:acme/api", wantURL: "github.com:acme/api", wantName: "api"},

		{name: "empty", entry: " ", wantErr: ErrUnsupportedURL},
		{name: "file URL", entry: "file:///etc/repo.git", wantErr: ErrUnsupportedURL},
		{name: "local path", entry: "/srv/git/repo.git", wantErr: ErrUnsupportedURL},
		{name: "owner/repo", entry: "acme/api", wantErr: ErrUnsupportedURL},
		{name: "remote helper", entry: "ext::sh%20-c%20touch%20x", wantErr: ErrUnsupportedURL},
		{name: "space inside", entry: "https://github.com/acme/my repo", wantErr: ErrUnsupportedURL},
		{name: "newline inside", entry: "https://github.com/acme/a\nb", wantErr: ErrUnsupportedURL},
		{name: "ftp", entry: "ftp://example.com/x.git", wantErr: ErrUnsupportedURL},
		{name: "no host", entry: "https:///x.git", wantErr: ErrUnsupportedURL},
		{name: "no path", entry: "https://github.com/", wantURL: "https://github.com/", wantErr: ErrUnsafeName},
		{name: "hidden", entry: "https://github.com/acme/.ssh", wantURL: "https://github.com/acme/.ssh", wantErr: ErrUnsafeName},
		{name: "dot dot, encoded", entry: "https://github.com/acme/%2e%2e", wantURL: "https://github.com/acme/%2e%2e", wantErr: ErrUnsafeName},
		{name: "repo/.git names the repo", entry: "https://github.com/acme/.git", wantURL: "https://github.com/acme/.git",
			wantName: "acme", wantHost: "https://github.com"},
		{name: "only .git", entry: "https://github.com/.git", wantURL: "https://github.com/.git", wantErr: ErrUnsafeName},
		{name: "option-like", entry: "https://github.com/acme/-rf", wantURL: "https://github.com/acme/-rf", wantErr: ErrUnsafeName},
		{name: "shell characters", entry: "https://github.com/acme/a$(id)", wantURL: "https://github.com/acme/a$(id)", wantErr: ErrUnsafeName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRepo(tt.entry)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseRepo(%q): got error %v, want %v", tt.entry, err, tt.wantErr)
			}
			if got.URL != tt.wantURL {
				t.Errorf("URL: got %q, want %q", got.URL, tt.wantURL)
			}
			if err != nil {
				return
			}
			if got.Name != tt.wantName || got.Dir != Home+"/"+tt.wantName || got.credHost != tt.wantHost {
				t.Errorf("got name %q, dir %q, host %q; want %q, %q, %q", got.Name, got.Dir, got.credHost,
					tt.wantName, Home+"/"+tt.wantName, tt.wantHost)
			}
			user := ""
			if got.user != nil {
				user = got.user.String()
			}
			if user != tt.wantUser {
				t.Errorf("user info kept for the store: got %q, want %q", user, tt.wantUser)
			}
		})
	}
}

func TestDirNameLikeGit(t *testing.T) {
	// What `git clone <url>` names the directory.
	for path, want := range map[string]string{
		"/acme/api.git": "api", "/acme/api": "api", "/acme/api/": "api", "/acme/api.git/": "api", "/acme/api/.git": "api",
		"/acme/api/.git/": "api", "acme/api.git": "api", "/a.b.git": "a.b", "/x.git.git": "x.git", "/": "", "": "",
	} {
		if got := dirName(path); got != want {
			t.Errorf("dirName(%q): got %q, want %q", path, got, want)
		}
	}
}

func TestNewPlan(t *testing.T) {
	tests := []struct {
		name     string
		repos    []string
		settings registry.Settings
		want     []error // per entry kept
		empty    bool
	}{
		{name: "nothing", empty: true},
		{name: "identity only", settings: registry.Settings{GitName: "Ada"}},
		{name: "empty entries are skipped", repos: []string{"", "  "}, empty: true},
		{name: "two repos", repos: []string{"https://h/a/api.git", "git@h:a/web.git"}, want: []error{nil, nil}},
		{name: "same directory twice", repos: []string{"https://h/a/api.git", "https://other/b/api"},
			want: []error{nil, ErrDuplicateDir}},
		{name: "a refused entry does not take its directory", repos: []string{"ftp://h/api.git", "https://h/a/api.git"},
			want: []error{ErrUnsupportedURL, nil}},
		{name: "option-like branch", repos: []string{"https://h/a/api.git"}, settings: registry.Settings{GitBranch: "--upload-pack=x"},
			want: []error{ErrInvalidBranch}},
		{name: "branch with a space", repos: []string{"https://h/a/api.git"}, settings: registry.Settings{GitBranch: "a b"},
			want: []error{ErrInvalidBranch}},
		{name: "ordinary branch", repos: []string{"https://h/a/api.git"}, settings: registry.Settings{GitBranch: "feature/x-1"},
			want: []error{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlan(tt.repos, tt.settings, "")
			if p.Empty() != tt.empty {
				t.Errorf("Empty: got %v, want %v", p.Empty(), tt.empty)
			}
			if len(p.Repos) != len(tt.want) {
				t.Fatalf("entries: got %d, want %d", len(p.Repos), len(tt.want))
			}
			for i, e := range p.Repos {
				if !errors.Is(e.Err, tt.want[i]) || (tt.want[i] == nil) != (e.Err == nil) {
					t.Errorf("entry %d (%s): got %v, want %v", i, e.Shown, e.Err, tt.want[i])
				}
			}
		})
	}
}

func TestPlanShowsNoSecret(t *testing.T) {
	p := NewPlan([]string{"https://ada:s3cret@h/a/api.git", "ftp://bob:hunter22@h/x.git"}, registry.Settings{}, "")
	got := []string{p.Repos[0].Shown, p.Repos[1].Shown}
	if d := cmp.Diff([]string{"https://h/a/api.git", "ftp://h/x.git"}, got); d != "" {
		t.Errorf("shown entries (-want +got):\n%s", d)
	}
}
