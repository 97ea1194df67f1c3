package docker

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"berth/shared/wire"
)

// A Fresh mount starts empty: whatever a forgotten workspace of the same id
// left in its directory is removed before the container sees it; a mount
// that is not Fresh keeps its data (a home coming back).
func TestFreshMount(t *testing.T) {
	c := newTestClient(t)
	for _, fresh := range []bool{false, true} {
		t.Run("fresh="+strconv.FormatBool(fresh), func(t *testing.T) {
			src := "ws-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/home"
			dir := filepath.Join(c.DataDir(), src)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "left.txt"), []byte("someone else's"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctr := startContainer(t, c, func(r *wire.CreateContainerRequest) {
				r.Mounts = []wire.Mount{{Source: src, Target: "/home/dev", Fresh: fresh}}
			})
			got := sh(t, c, ctr.ID, "ls -A /home/dev")
			want := "left.txt"
			if fresh {
				want = ""
			}
			if got != want {
				t.Errorf("/home/dev holds %q, want %q", got, want)
			}
		})
	}
}
