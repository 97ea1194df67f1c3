package secretbox

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	sealed, err := box.Seal("w1", "ada:s3cret")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := box.Seal("w1", "ada:s3cret")
	if !strings.HasPrefix(sealed, prefix) || strings.Contains(sealed, "s3cret") || sealed == again {
		t.Errorf("sealed: got %q (and %q), want a prefixed value without the secret, new each time", sealed, again)
	}
	tests := []struct {
		name      string
		box       *Box
		owner, in string
		want      string
		wantErr   error
	}{
		{name: "opens", box: box, owner: "w1", in: sealed, want: "ada:s3cret"},
		{name: "another owner", box: box, owner: "w2", in: sealed, wantErr: ErrOpen},
		{name: "another key", box: other, owner: "w1", in: sealed, wantErr: ErrOpen},
		{name: "changed", box: box, owner: "w1", in: sealed[:len(sealed)-2] + "AA", wantErr: ErrOpen},
		{name: "not base64", box: box, owner: "w1", in: prefix + "!!", wantErr: ErrOpen},
		{name: "written before sealing", box: box, owner: "w1", in: "ada:plain", want: "ada:plain"},
		{name: "empty", box: box, owner: "w1", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.box.Open(tt.owner, tt.in)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("Open: got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if s, err := box.Seal("w1", ""); s != "" || err != nil {
		t.Errorf("Seal of nothing: got %q, %v; want nothing", s, err)
	}
	if _, err := New(key[:16]); err == nil {
		t.Error("New with a 16-byte key: got no error")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secrets.key")
	key, err := LoadOrCreateKey(path)
	if err != nil || len(key) != KeySize {
		t.Fatalf("create: got %d bytes, %v", len(key), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want mode 600", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v %v, want mode 700", fi.Mode(), err)
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Errorf("load: got another key (%v)", err)
	}
	b64 := filepath.Join(dir, "b64.key")
	if err := os.WriteFile(b64, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadOrCreateKey(b64); err != nil || !bytes.Equal(got, key) {
		t.Errorf("base64 key: got %v, %v", got, err)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(bad); err == nil {
		t.Error("a 5-byte key file: got no error")
	}
}
