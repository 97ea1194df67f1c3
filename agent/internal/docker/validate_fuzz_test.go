package docker

import (
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"berth/shared/wire"
)

// fuzzDataDir is the data directory the fuzz targets check against
// (lexically: nothing is created).
const fuzzDataDir = "/var/lib/berth"

// FuzzValidateCreate fuzzes the create request's validation (validate.go,
// ValidateCreate) with any JSON the agent decodes. Properties:
//   - a refusal wraps ErrBadRequest (the agent's 400);
//   - an accepted request, checked independently: a name and an image, not
//     privileged, no host or container namespace (any case, any blanks),
//     finite non-negative limits, every mount target absolute and every
//     mount source strictly below the data directory once cleaned;
//   - ContainerLabels of an accepted request carry berth's own labels,
//     whatever labels the request asked for.
func FuzzValidateCreate(f *testing.F) {
	for _, s := range []string{
		`{"name":"ws","image":"berth/workspace:dev","mounts":[{"source":"homes/a","target":"/home/dev"}],"resources":{"cpu":1,"memory_mb":512}}`,
		`{"name":"ws","image":"i","privileged":true}`,
		`{"name":"ws","image":"i","network_mode":"\tHoSt\n"}`,
		`{"name":"ws","image":"i","ipc_mode":"container:x","pid_mode":"CONTAINER:y"}`,
		`{"name":"ws","image":"i","mounts":[{"source":"a/../../etc","target":"/etc"}]}`,
		`{"name":"ws","image":"i","mounts":[{"source":"/var/lib/berth/../berth-x/a","target":"/x"}]}`,
		`{"name":"ws","image":"i","mounts":[{"source":"/var/lib/berthx","target":"/x"}]}`,
		`{"name":"ws","image":"i","mounts":[{"source":".","target":"/x"}]}`,
		`{"name":"ws","image":"i","mounts":[{"source":"a\u0000/../..","target":"x"}]}`,
		`{"name":"ws","image":"i","resources":{"cpu":1e308,"memory_mb":8796093022207}}`,
		`{"name":"ws","image":"i","resources":{"memory_mb":8796093022208}}`,
		`{"name":"ws","image":"i","gpu":{"count":-1,"capabilities":["gpu"]}}`,
		`{"name":" ","image":"\u2028"}`,
		`{"name":"ws","image":"i","labels":{"berth.managed":"no","berth.server_id":"evil","berth.epoch":"9"},"epoch":-1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req wire.CreateContainerRequest
		if err := json.Unmarshal(data, &req); err != nil {
			t.Skip("the agent's decode refuses it (a 400)")
		}
		if err := ValidateCreate(req, fuzzDataDir); err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v: want ErrBadRequest", err)
			}
			return
		}
		checkAcceptedCreate(t, req)
		labels := ContainerLabels(req, "srv-1")
		if labels[wire.LabelManaged] != "true" || labels[wire.LabelServerID] != "srv-1" {
			t.Fatalf("labels %v: berth's own labels must win", labels)
		}
	})
}

// checkAcceptedCreate checks an accepted request against the rules,
// without the validator's code.
func checkAcceptedCreate(t *testing.T, req wire.CreateContainerRequest) {
	t.Helper()
	if strings.TrimSpace(req.Name) == "" || strings.TrimSpace(req.Image) == "" || req.Privileged {
		t.Fatalf("accepted %+v", req)
	}
	for _, mode := range []string{req.NetworkMode, req.PidMode, req.IpcMode} {
		m := strings.ToLower(strings.TrimSpace(mode))
		if m == "host" || strings.HasPrefix(m, "container:") {
			t.Fatalf("accepted namespace mode %q", mode)
		}
	}
	if r := req.Resources; !(r.CPU >= 0) || math.IsInf(r.CPU, 0) || r.MemoryMB < 0 || r.MemoryMB > 1<<63/(1<<20) {
		t.Fatalf("accepted resources %+v", r)
	}
	for _, m := range req.Mounts {
		if !strings.HasPrefix(m.Target, "/") {
			t.Fatalf("accepted mount target %q", m.Target)
		}
		checkBelowData(t, "mount source", m.Source)
	}
}

// checkBelowData fails unless p (relative to the data directory, or
// absolute) names a path strictly below the data directory.
func checkBelowData(t *testing.T, what, p string) {
	t.Helper()
	if !filepath.IsAbs(p) {
		p = fuzzDataDir + "/" + p
	}
	rel, err := filepath.Rel(fuzzDataDir, filepath.Clean(p))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		t.Fatalf("accepted %s %q: %q relative to the data directory", what, p, rel)
	}
}

// FuzzDataPath fuzzes the data path check of DELETE /v1/data and the home
// transfers (ValidateDataPath). Properties: a refusal wraps ErrBadRequest;
// an accepted path is relative and names a path strictly below the data
// directory once cleaned (no "..", no NUL trick, not the directory
// itself).
func FuzzDataPath(f *testing.F) {
	for _, s := range []string{
		"homes/ws1", "", ".", "..", "../berth", "a/../..", "a/../b", "/var/lib/berth/x", "homes/../../etc/shadow",
		"a\x00/../..", "./././.", "homes//ws1/", "\u2028", "a/./../../berth-other",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		if err := ValidateDataPath(fuzzDataDir, rel); err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v: want ErrBadRequest", err)
			}
			return
		}
		if filepath.IsAbs(rel) {
			t.Fatalf("accepted the absolute path %q", rel)
		}
		checkBelowData(t, "data path", rel)
	})
}
