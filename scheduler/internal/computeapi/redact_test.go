package computeapi

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/registry"
)

func TestIsSecretKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"GITHUB_TOKEN", true}, {"gh_token", true}, {"TOKENIZER", true}, {"MY_SECRET_KEY", true},
		{"AWS_SECRET_ACCESS_KEY", true}, {"db_password", true}, {"GPG_PASSPHRASE", true},
		{"GIT_CREDENTIALS", true}, {"git_credentials", true},
		{"OPENAI_API_KEY", true}, {"anthropic_api_key", true}, {"API_KEY", true}, {"STRIPE_APIKEY", true},
		{"SSH_PRIVATE_KEY", true}, {"PRIVATE_KEY_PEM", true}, {"tls_private_key_file", true},
		{"SSH_AUTHORIZED_KEYS", false}, {"ENABLE_SSHD", false}, {"GIT_CREDENTIALS_FILE", false}, {"PATH", false},
		{"AWS_ACCESS_KEY_ID", false}, {"KEYBOARD", false}, {"PUBLIC_KEY", false}, {"API_URL", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := isSecretKey(tt.key); got != tt.want {
				t.Errorf("isSecretKey(%q) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:ghp_token@github.com/a/b.git", "https://***@github.com/a/b.git"},
		{"https://x-access-token:ghs_abc@github.com/o/r", "https://***@github.com/o/r"},
		{"https://ghp_tokenonly@github.com/a/b", "https://***@github.com/a/b"},
		{"HTTP://U:P@host:8080/x", "HTTP://***@host:8080/x"},
		{"postgres://app:s3cret@db:5432/app?sslmode=disable", "postgres://***@db:5432/app?sslmode=disable"},
		{"git+ssh://git:pw@host/repo", "git+ssh://***@host/repo"},
		{"two https://a:b@h1/x and http://c:d@h2/y", "two https://***@h1/x and http://***@h2/y"},
		{"https://github.com/a/b", "https://github.com/a/b"},
		{"https://github.com/a/b@v1.2", "https://github.com/a/b@v1.2"},
		{"git@github.com:a/b.git", "git@github.com:a/b.git"}, // ssh: the user is no secret, there is none to hide
		{"user@example.com", "user@example.com"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := redactURLs(tt.in); got != tt.want {
				t.Errorf("redactURLs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestInfoRedactsSecrets(t *testing.T) {
	ws := aliceWS()
	ws.Repositories = []string{"https://u:ghp_x@github.com/a/b", "https://github.com/c/d"}
	ws.Environment = map[string]string{"OPENAI_API_KEY": "sk-1", "SSH_PRIVATE_KEY": "-----BEGIN", "DATABASE_URL": "postgres://a:pw@db/x",
		"EDITOR": "vim"}
	got := infoOf(ws)
	want := map[string]string{"OPENAI_API_KEY": "***", "SSH_PRIVATE_KEY": "***", "DATABASE_URL": "postgres://***@db/x", "EDITOR": "vim"}
	if diff := cmp.Diff(want, got.Environment); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"https://***@github.com/a/b", "https://github.com/c/d"}, got.Repositories); diff != "" {
		t.Errorf("repositories (-want +got):\n%s", diff)
	}
	if ws.Repositories[0] != "https://u:ghp_x@github.com/a/b" {
		t.Errorf("infoOf changed the record: %q", ws.Repositories[0])
	}
	if got := infoOf(registry.Workspace{}).Repositories; got == nil || len(got) != 0 {
		t.Errorf("no repositories: got %v, want []", got)
	}
}
