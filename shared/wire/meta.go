package wire

import (
	"encoding/json"
	"errors"
	"fmt"
)

// MetaMaxSize is memberlist's limit on a node's metadata.
const MetaMaxSize = 512

// ErrMetaTooLarge means a NodeMeta does not fit in MetaMaxSize bytes.
var ErrMetaTooLarge = errors.New("node metadata larger than 512 bytes")

// Node roles in the gossip pool.
const (
	NodeRoleAgent     = "a"
	NodeRoleScheduler = "s"
)

// NodeMeta is what each member gossips about itself. It is encoded as JSON
// with one- or two-letter keys so that a host with a handful of labels fits
// comfortably in memberlist's 512 bytes; Encode refuses anything larger.
// Sizes are whole units (MB, GB, milli-cores) to keep the encoding short.
type NodeMeta struct {
	Role         string            `json:"r"`
	ServerID     string            `json:"id"`
	AgentAddr    string            `json:"a,omitempty"` // host:port of the agent's mTLS API
	Region       string            `json:"rg,omitempty"`
	Labels       map[string]string `json:"l,omitempty"`
	Architecture string            `json:"ar,omitempty"`
	CPUMilli     int64             `json:"c,omitempty"`  // total cores × 1000
	CPUUsedPct   int64             `json:"cu,omitempty"` // whole-host CPU use, 0..100
	MemTotalMB   int64             `json:"m,omitempty"`
	MemFreeMB    int64             `json:"mf,omitempty"`
	DiskTotalGB  int64             `json:"d,omitempty"`
	DiskFreeGB   int64             `json:"df,omitempty"`
	Workspaces   int               `json:"w,omitempty"`
	GPUType      string            `json:"gt,omitempty"`
	GPUCount     int               `json:"g,omitempty"`
	Version      string            `json:"v,omitempty"`
	Seq          uint64            `json:"s,omitempty"` // bumped on every refresh
	// EventSeq is the number of the agent's latest container event
	// (EventLog.Seq): the scheduler fetches PathEventLog when it moves.
	// 0 from an agent without an event log.
	EventSeq uint64 `json:"es,omitempty"`
	// DockerDown is set while the agent's last sample of its host could
	// not reach the local dockerd: the agent runs, its host takes no
	// workspaces.
	DockerDown bool `json:"dd,omitempty"`
}

// Encode returns the compact encoding, or ErrMetaTooLarge.
func (m NodeMeta) Encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode node meta: %w", err)
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, len(b))
	}
	return b, nil
}

// DecodeNodeMeta parses what Encode produced.
func DecodeNodeMeta(b []byte) (NodeMeta, error) {
	var m NodeMeta
	if len(b) == 0 {
		return m, errors.New("empty node metadata")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode node meta: %w", err)
	}
	return m, nil
}

// SameCapacity reports whether two metas would tell the scheduler the same
// thing; agents re-gossip only when it is false (Seq excluded).
func (m NodeMeta) SameCapacity(o NodeMeta) bool {
	m.Seq, o.Seq = 0, 0
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(o)
	return string(a) == string(b)
}
