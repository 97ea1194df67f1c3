package gossip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"berth/shared/wire"
)

// ErrRefused wraps every reason a member is refused.
var ErrRefused = errors.New("gossip member refused")

// ErrUnregistered is what Config.Admit returns (wrapped) for an agent whose
// name is not a registered server: it is refused membership like any other
// refusal, but listed by Members as an unregistered candidate (alive while
// it keeps announcing itself, at most maxCandidates of them) so that an
// operator can register it ("discovered" agents).
var ErrUnregistered = errors.New("not a registered server")

// Candidates: how many unregistered agents are listed, and for how long
// after their last announcement (memberlist's push-pull repeats it every
// 10 s with Config.Fast).
const (
	maxCandidates = 64
	candidateTTL  = 35 * time.Second
)

// refusalLogEvery limits how often one name's refusal is logged: memberlist
// asks again on every alive message about it.
const refusalLogEvery = time.Minute

// checkMember is what every member must pass, on every alive message:
// metadata within memberlist's 512 bytes that decodes, a known role, the
// member's name equal to the server id it claims, and numbers in range.
func checkMember(n *memberlist.Node) (wire.NodeMeta, error) {
	if len(n.Meta) > wire.MetaMaxSize {
		return wire.NodeMeta{}, fmt.Errorf("%w: %d bytes of metadata, limit %d", ErrRefused, len(n.Meta), wire.MetaMaxSize)
	}
	meta, err := wire.DecodeNodeMeta(n.Meta)
	if err != nil {
		return meta, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	var errs []error
	if meta.Role != wire.NodeRoleAgent && meta.Role != wire.NodeRoleScheduler {
		errs = append(errs, fmt.Errorf("role %q, want %q or %q", meta.Role, wire.NodeRoleAgent, wire.NodeRoleScheduler))
	}
	if meta.ServerID != n.Name {
		errs = append(errs, fmt.Errorf("metadata names %q, the member is %q", meta.ServerID, n.Name))
	}
	if meta.AgentAddr != "" {
		if _, _, err := net.SplitHostPort(meta.AgentAddr); err != nil {
			errs = append(errs, fmt.Errorf("agent address %q: %v", meta.AgentAddr, err))
		}
	}
	if meta.CPUUsedPct < 0 || meta.CPUUsedPct > 100 {
		errs = append(errs, fmt.Errorf("cpu use %d%%, want 0..100", meta.CPUUsedPct))
	}
	for name, v := range map[string]int64{"cpu": meta.CPUMilli, "memory": meta.MemTotalMB, "free memory": meta.MemFreeMB,
		"disk": meta.DiskTotalGB, "free disk": meta.DiskFreeGB, "workspaces": int64(meta.Workspaces), "gpus": int64(meta.GPUCount)} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", name, v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return meta, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return meta, nil
}

// admission is memberlist's alive and conflict delegate.
type admission Pool

// NotifyAlive refuses a member that fails checkMember or Config.Admit: it
// then never enters this member's view (nor its events).
func (a *admission) NotifyAlive(n *memberlist.Node) error {
	p := (*Pool)(a)
	if n.Name == p.name {
		return nil
	}
	meta, err := checkMember(n)
	if err == nil && p.admit != nil {
		if aerr := p.admit(Member{Name: n.Name, Addr: nodeAddr(n), Meta: meta}); aerr != nil {
			err = fmt.Errorf("%w: %w", ErrRefused, aerr)
		}
	}
	if err != nil {
		p.logRefusal(n.Name, nodeAddr(n), err)
	}
	if errors.Is(err, ErrUnregistered) {
		p.noteCandidate(Member{Name: n.Name, Addr: nodeAddr(n), State: StateAlive, Meta: meta, Unregistered: true, Since: time.Now().UTC()})
	}
	return err
}

// noteCandidate remembers an unregistered agent's latest announcement,
// evicting the stalest when maxCandidates are listed.
func (p *Pool) noteCandidate(m Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.candidates[m.Name]; !ok && len(p.candidates) >= maxCandidates {
		oldest := ""
		for name, c := range p.candidates {
			if oldest == "" || c.Since.Before(p.candidates[oldest].Since) {
				oldest = name
			}
		}
		delete(p.candidates, oldest)
	}
	p.candidates[m.Name] = m
}

// NotifyConflict is called when a name is claimed from a second address
// while its holder is alive (or dead for less than DeadNodeReclaimTime):
// memberlist keeps the holder; the claim is logged.
func (a *admission) NotifyConflict(existing, other *memberlist.Node) {
	(*Pool)(a).log.Warn("gossip name conflict: a second address claims a member's name, ignored",
		"member", existing.Name, "holder", nodeAddr(existing), "claimant", nodeAddr(other))
}

func (p *Pool) logRefusal(name, addr string, err error) {
	now := time.Now()
	p.mu.Lock()
	last, seen := p.refused[name]
	if !seen || now.Sub(last) >= refusalLogEvery {
		if len(p.refused) >= 1024 { // bounded: a flood of names forgets old ones
			clear(p.refused)
		}
		p.refused[name] = now
	}
	p.mu.Unlock()
	if !seen || now.Sub(last) >= refusalLogEvery {
		p.log.Warn("gossip member refused", "member", name, "address", addr, "error", err)
	}
}

// pruneLocked forgets members dead or left for longer than pruneAfter,
// and candidates silent for candidateTTL.
func (p *Pool) pruneLocked(now time.Time) {
	for name, m := range p.members {
		if (m.State == StateDead || m.State == StateLeft) && now.Sub(m.Since) > p.pruneAfter {
			delete(p.members, name)
		}
	}
	for name, c := range p.candidates {
		if now.Sub(c.Since) > candidateTTL {
			delete(p.candidates, name)
		}
	}
}

func nodeAddr(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}
