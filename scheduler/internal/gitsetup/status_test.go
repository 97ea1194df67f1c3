package gitsetup

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/registry"
)

// metadata.git_setup as the compute API returns it: the shape the README
// documents.
func TestStatusMetadataShape(t *testing.T) {
	at := time.Date(2026, 1, 5, 10, 11, 12, 0, time.UTC)
	p := NewPlan([]string{"https://github.com/acme/api.git", "ftp://h/x.git"}, registry.Settings{GitBranch: "dev"}, "ada:tok")
	s := newStatus(p, 2, at)
	s.State, s.Credentials, s.StartedAt = StateRunning, CredentialsStored, at.Add(time.Second)
	s.Repos[0].State, s.Repos[0].Seconds = RepoCloned, 1.25
	meta := map[string]any{"home_reset": true}
	s.put(meta)
	raw, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"git_setup":{"branch":"dev","credentials":"stored","repos":[` +
		`{"dir":"/home/dev/api","seconds":1.25,"status":"cloned","url":"https://github.com/acme/api.git"},` +
		`{"error":"unsupported repository URL: scheme \"ftp\" (want https, http, ssh or git)","reason":"unsupported_url","status":"failed","url":"ftp://h/x.git"}],` +
		`"requested_at":"2026-01-05T10:11:12Z","run":2,"started_at":"2026-01-05T10:11:13Z","status":"running"},"home_reset":true}`
	if d := cmp.Diff(want, string(raw)); d != "" {
		t.Errorf("metadata (-want +got):\n%s", d)
	}
	back, ok := StatusOf(meta)
	if !ok {
		t.Fatal("StatusOf: no status")
	}
	if d := cmp.Diff(s, back); d != "" {
		t.Errorf("StatusOf after put (-want +got):\n%s", d)
	}
	for _, m := range []map[string]any{nil, {}, {MetadataKey: "x"}, {MetadataKey: map[string]any{"run": 1}}} {
		if _, ok := StatusOf(m); ok {
			t.Errorf("StatusOf(%v): got a status, want none", m)
		}
	}
}
