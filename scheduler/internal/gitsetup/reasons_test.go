package gitsetup

import (
	"strings"
	"testing"
)

// The standard error of failed clones, as git 2.39 (C locale), libcurl and
// ssh write it.
func TestClassify(t *testing.T) {
	tests := []struct {
		name, stderr string
		want         Reason
	}{
		{"wrong password", "fatal: Authentication failed for 'http://172.18.0.1:41369/app.git/'\n", ReasonBadCredentials},
		{"no credentials, prompts disabled",
			"fatal: could not read Username for 'https://github.com': terminal prompts disabled\n", ReasonBadCredentials},
		{"GitHub's token message", "remote: Invalid username or password.\nfatal: Authentication failed for 'https://github.com/a/b.git/'\n",
			ReasonBadCredentials},
		{"403", "fatal: unable to access 'https://git.example.com/a/b.git/': The requested URL returned error: 403\n", ReasonBadCredentials},
		{"ssh key refused", "git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.\n", ReasonBadCredentials},
		{"missing branch", "warning: Could not find remote branch nope to clone.\nfatal: Remote branch nope not found in upstream origin\n",
			ReasonBranchNotFound},
		{"no such repository", "remote: Repository not found.\nfatal: repository 'https://github.com/a/nope.git/' not found\n", ReasonRepoNotFound},
		{"404", "fatal: unable to access 'http://h/x.git/': The requested URL returned error: 404\n", ReasonRepoNotFound},
		{"unknown host", "fatal: unable to access 'https://nope.invalid/a.git/': Could not resolve host: nope.invalid\n", ReasonUnreachable},
		{"connection refused", "fatal: unable to access 'http://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server\n",
			ReasonUnreachable},
		{"connection timed out", "fatal: unable to access 'https://10.255.0.1/x.git/': Failed to connect to 10.255.0.1 port 443 after 130000 ms: Connection timed out\n",
			ReasonUnreachable},
		{"git protocol refused", "fatal: unable to connect to h:\nh[0: 10.0.0.1]: errno=Connection refused\n", ReasonUnreachable},
		{"ssh unknown host", "ssh: Could not resolve hostname nope.invalid: Name or service not known\nfatal: Could not read from remote repository.\n",
			ReasonUnreachable},
		{"certificate", "fatal: unable to access 'https://self-signed.example/x.git/': SSL certificate problem: self-signed certificate\n",
			ReasonUnreachable},
		{"a URL naming tls is not a TLS failure", "fatal: destination path 'tls-tools' already exists and is not an empty directory.\n",
			ReasonFailed},
		{"anything else", "fatal: something odd\n", ReasonFailed},
		{"nothing", "", ReasonFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.stderr); got != tt.want {
				t.Errorf("Classify(%q): got %s, want %s", tt.stderr, got, tt.want)
			}
		})
	}
}

func TestErrorLine(t *testing.T) {
	long := "fatal: " + strings.Repeat("é", 400)
	tests := []struct{ in, want string }{
		{"warning: Could not find remote branch x to clone.\nfatal: Remote branch x not found in upstream origin\n",
			"fatal: Remote branch x not found in upstream origin"},
		{"remote: Repository not found.\nfatal: repository 'u' not found\nhint: something\n", "fatal: repository 'u' not found"},
		{"just a line\n\n", "just a line"},
		{"fatal: bell\a and escape\x1b[31m\n", "fatal: bell and escape[31m"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := errorLine(tt.in); got != tt.want {
			t.Errorf("errorLine(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
	got := errorLine(long)
	if len(got) > maxErrorLen+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "fatal: éé") {
		t.Errorf("errorLine of a long line: got %d bytes %q…, want at most %d and cut on a character", len(got), got[:20], maxErrorLen)
	}
}
