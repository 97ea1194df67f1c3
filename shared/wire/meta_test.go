package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fullMeta() NodeMeta {
	return NodeMeta{
		Role: NodeRoleAgent, ServerID: "ws-eu-central-fsn1-042", AgentAddr: "203.0.113.200:7443",
		Region: "eu-central", Architecture: "amd64",
		Labels:   map[string]string{"tier": "gpu", "zone": "fsn1-dc14", "rack": "r12", "disk": "nvme"},
		CPUMilli: 64000, CPUUsedPct: 97, MemTotalMB: 262144, MemFreeMB: 130000,
		DiskTotalGB: 3840, DiskFreeGB: 2900, Workspaces: 123, GPUType: "NVIDIA RTX 6000 Blackwell",
		GPUCount: 2, Version: "v1.12.3-rc1", Seq: 18446744073709551615,
		EventSeq: 18446744073709551615, DockerDown: true,
	}
}

func TestNodeMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta NodeMeta
	}{
		{"full agent", fullMeta()},
		{"scheduler", NodeMeta{Role: NodeRoleScheduler, ServerID: "scheduler"}},
		{"no labels", func() NodeMeta { m := fullMeta(); m.Labels = nil; return m }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.meta.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(b) > MetaMaxSize {
				t.Fatalf("encoded size %d, want <= %d", len(b), MetaMaxSize)
			}
			got, err := DecodeNodeMeta(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.meta, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// A realistic fully-populated agent meta leaves room for more labels.
func TestNodeMetaSizeBudget(t *testing.T) {
	b, err := fullMeta().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 400 {
		t.Errorf("full meta is %d bytes, want <= 400 to leave headroom under %d", len(b), MetaMaxSize)
	}
}

func TestNodeMetaTooLarge(t *testing.T) {
	m := fullMeta()
	m.Labels["notes"] = strings.Repeat("x", 300)
	_, err := m.Encode()
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("Encode err = %v, want ErrMetaTooLarge", err)
	}
}

func TestDecodeNodeMetaRejectsGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("{"), []byte("not json")} {
		if _, err := DecodeNodeMeta(in); err == nil {
			t.Errorf("DecodeNodeMeta(%q) succeeded, want error", in)
		}
	}
}

func TestSameCapacityIgnoresSeq(t *testing.T) {
	a, b := fullMeta(), fullMeta()
	b.Seq = 1
	if !a.SameCapacity(b) {
		t.Error("metas differing only in Seq should be the same capacity")
	}
	b.MemFreeMB--
	if a.SameCapacity(b) {
		t.Error("metas differing in MemFreeMB should differ")
	}
}
