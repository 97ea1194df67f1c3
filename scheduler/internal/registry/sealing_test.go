package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// reverser is a Sealer that reverses the value behind a marker, bound to
// its owner: enough to see what is stored and what is read.
type reverser struct{}

func (reverser) Seal(owner, plain string) (string, error) {
	return "sealed:" + owner + ":" + reverse(plain), nil
}

func (reverser) Open(owner, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, "sealed:"+owner+":")
	if !ok {
		if strings.HasPrefix(sealed, "sealed:") {
			return "", errors.New("not this owner's")
		}
		return sealed, nil
	}
	return reverse(rest), nil
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// With a Sealer the credentials table holds only sealed values; reads open
// them, and values written before sealing are read as they are.
func TestCredentialsSealedAtRest(t *testing.T) {
	localOnly(t)
	ctx := context.Background()
	db, _ := openTestDB(t)
	mustCreateServer(t, db, Server{ID: "a"})
	if _, err := db.ReserveAndInsert(ctx, Workspace{ID: "before", UserID: "u", ServerID: "a"}, Credentials{Git: "ada:old-s3cret"}, Limits{}); err != nil {
		t.Fatal(err)
	}
	db.SealCredentials(reverser{})
	if _, err := db.ReserveAndInsert(ctx, Workspace{ID: "after", UserID: "u", ServerID: "a"}, Credentials{Git: "ada:new-s3cret"}, Limits{}); err != nil {
		t.Fatal(err)
	}
	mustReserve(t, db, Workspace{ID: "none", UserID: "u", ServerID: "a"}, Limits{})
	var stored string
	if err := db.read.QueryRowContext(ctx, "SELECT git FROM workspace_credentials WHERE workspace_id = 'after'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != "sealed:after:"+reverse("ada:new-s3cret") {
		t.Errorf("stored: got %q, want it sealed", stored)
	}
	for id, want := range map[string]string{"before": "ada:old-s3cret", "after": "ada:new-s3cret", "none": ""} {
		if got, err := db.GetCredentials(ctx, id); err != nil || got.Git != want {
			t.Errorf("GetCredentials(%s): got %q, %v; want %q", id, got.Git, err, want)
		}
	}
	// A sealed value moved to another row does not open.
	if _, err := db.write.ExecContext(ctx, "UPDATE workspace_credentials SET git = ? WHERE workspace_id = 'before'", stored); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetCredentials(ctx, "before"); err == nil {
		t.Error("GetCredentials of another row's sealed value: got no error")
	}
}
