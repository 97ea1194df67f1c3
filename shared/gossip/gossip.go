package gossip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"berth/shared/logging"
	"berth/shared/wire"
)

// Node states, as memberlist names them.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Config is one member's gossip configuration.
type Config struct {
	Name          string // unique member name: the server id for agents
	BindAddr      string // host:port
	AdvertiseAddr string // host:port others use; "" = derived from BindAddr
	Key           []byte // AES key, 16/24/32 bytes: gossip is always encrypted
	Label         string // cluster label: packets of other clusters are refused
	// Keys is the keyring (the primary first, see ParseKeys); when set, Key
	// is ignored. SetKeys and WatchKeyFile change it while running.
	Keys [][]byte
	// Fast tunes failure detection for a LAN (sub-second probes, small
	// suspicion multiplier). Off gives memberlist's DefaultLANConfig.
	Fast bool
	// Admit, when set, decides on every member gossip announces (after the
	// built-in checks of checkMember); an error refuses the member, and the
	// refusal is logged at most once a minute per name. The scheduler admits
	// only agents whose name is a registered server id.
	Admit func(Member) error
	// PruneAfter is how long a dead or left member stays in Members;
	// 0 = DefaultPruneAfter.
	PruneAfter time.Duration
}

// DefaultPruneAfter is how long a dead or left member stays in the view.
const DefaultPruneAfter = time.Hour

// DeadNodeReclaimTime is how long a member must have been dead before
// another address may take its name (memberlist refuses a name held by a
// live member at another address, and this package logs the conflict).
const DeadNodeReclaimTime = 10 * time.Second

// Member is one node of the membership view.
type Member struct {
	Name    string        `json:"name"`
	Addr    string        `json:"address"`
	State   string        `json:"state"`
	Meta    wire.NodeMeta `json:"meta"`
	MetaErr string        `json:"meta_error,omitempty"`
	Since   time.Time     `json:"since"` // when State was last set
	// Unregistered marks an agent refused membership because its name is
	// not a registered server (Config.Admit, ErrUnregistered): listed so
	// that it can be registered, never a member. Since is its latest
	// announcement.
	Unregistered bool `json:"unregistered,omitempty"`
}

// Event is a membership change delivered to subscribers.
type Event struct {
	Member Member
	Kind   string // "join", "update", "leave"
}

// Pool is one running memberlist member.
type Pool struct {
	list       *memberlist.Memberlist
	log        hclog.Logger
	keyring    *memberlist.Keyring
	name       string
	admit      func(Member) error
	pruneAfter time.Duration

	mu      sync.Mutex
	meta    []byte
	members map[string]Member // by name, including dead and left ones until pruned
	subs    []chan Event
	watch   func(Member)         // see Watch
	refused map[string]time.Time // name → when its refusal was last logged
	// candidates are unregistered agents refused membership, by name.
	candidates map[string]Member
}

// New starts a member. It does not join anyone: call Join.
func New(cfg Config, meta wire.NodeMeta, log hclog.Logger) (*Pool, error) {
	if cfg.PruneAfter < 0 {
		return nil, fmt.Errorf("gossip: prune after %s: must not be negative", cfg.PruneAfter)
	}
	keys := cfg.Keys
	if len(keys) == 0 && len(cfg.Key) > 0 {
		keys = [][]byte{cfg.Key}
	}
	if len(keys) == 0 {
		return nil, errors.New("gossip: a key is required (gossip is always encrypted)")
	}
	keyring, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	encoded, err := meta.Encode()
	if err != nil {
		return nil, err
	}
	p := &Pool{log: log, meta: encoded, members: map[string]Member{}, keyring: keyring, name: cfg.Name,
		admit: cfg.Admit, pruneAfter: cmp.Or(cfg.PruneAfter, DefaultPruneAfter), refused: map[string]time.Time{},
		candidates: map[string]Member{}}

	mc := memberlist.DefaultLANConfig()
	if cfg.Fast {
		tuneFast(mc)
	}
	mc.Name = cfg.Name
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.AdvertiseAddr != "" {
		ah, ap, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address: %w", err)
		}
		if ip := net.ParseIP(ah); ip == nil {
			addrs, err := net.LookupHost(ah)
			if err != nil || len(addrs) == 0 {
				return nil, fmt.Errorf("gossip advertise address %q: %v", ah, err)
			}
			ah = addrs[0]
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	mc.Keyring = keyring
	mc.DeadNodeReclaimTime = DeadNodeReclaimTime
	mc.Label = cfg.Label
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*delegate)(p)
	mc.Events = (*events)(p)
	mc.Alive = (*admission)(p)
	mc.Conflict = (*admission)(p)
	mc.Logger = logging.StdLogger(log.Named("memberlist"))

	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	p.list = list
	return p, nil
}

// tuneFast makes a dead node visible within about a second on a LAN while
// tolerating a busy machine: probes every 200 ms with a 150 ms timeout,
// indirect probes through 3 peers, and suspicion that lasts a few probe rounds.
func tuneFast(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 150 * time.Millisecond
	mc.IndirectChecks = 3
	mc.SuspicionMult = 2
	mc.SuspicionMaxTimeoutMult = 3
	mc.GossipInterval = 100 * time.Millisecond
	mc.GossipNodes = 4
	mc.PushPullInterval = 10 * time.Second
	mc.TCPTimeout = 2 * time.Second
}

// Join contacts the given peers; it succeeds when at least one answered.
func (p *Pool) Join(peers []string) (int, error) {
	if len(peers) == 0 {
		return 0, nil
	}
	n, err := p.list.Join(peers)
	if n > 0 {
		return n, nil
	}
	return 0, fmt.Errorf("gossip join %v: %w", peers, err)
}

// SetMeta publishes new metadata to the pool.
func (p *Pool) SetMeta(meta wire.NodeMeta) error {
	encoded, err := meta.Encode()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.meta = encoded
	p.mu.Unlock()
	return p.list.UpdateNode(time.Second)
}

// LocalAddr is the address other members reach this one at.
func (p *Pool) LocalAddr() string {
	n := p.list.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// NumAlive counts members (this one included) memberlist considers alive.
func (p *Pool) NumAlive() int { return p.list.NumMembers() }

// Members returns the view: every member seen, sorted by name. Alive and
// suspect states come from memberlist; dead and left ones are remembered
// (PruneAfter); unregistered candidates (ErrUnregistered) are listed with
// Unregistered set.
func (p *Pool) Members() []Member {
	out := []Member{}
	p.each(func(m Member) { out = append(out, m) })
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CountByState counts the members of Members by state, without copying
// the view (/metrics reads it at every scrape).
func (p *Pool) CountByState() map[string]int {
	out := map[string]int{}
	p.each(func(m Member) { out[m.State]++ })
	return out
}

// each calls fn with every member of the view, in no order, under the
// pool's lock: fn must not call the pool.
func (p *Pool) each(fn func(Member)) {
	live := map[string]string{}
	for _, n := range p.list.Members() {
		live[n.Name] = stateName(n.State)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneLocked(time.Now())
	for name, m := range p.members {
		if s, ok := live[name]; ok && s != m.State && m.State != StateDead && m.State != StateLeft {
			m.State = s
		}
		fn(m)
	}
	for name, c := range p.candidates {
		if _, member := p.members[name]; !member {
			fn(c)
		}
	}
}

// Watch sets fn to be called with each member as recorded, after every
// join, update and leave, in the order memberlist reports them. Unlike
// Subscribe it loses nothing; fn must be quick and must not call the pool.
func (p *Pool) Watch(fn func(Member)) {
	p.mu.Lock()
	p.watch = fn
	p.mu.Unlock()
}

// Subscribe returns a channel of membership events. Slow subscribers lose
// events rather than block gossip; the channel is closed by Shutdown.
func (p *Pool) Subscribe() <-chan Event {
	ch := make(chan Event, 256)
	p.mu.Lock()
	p.subs = append(p.subs, ch)
	p.mu.Unlock()
	return ch
}

// Leave announces a graceful departure, then shuts the member down.
func (p *Pool) Leave(timeout time.Duration) error {
	err := p.list.Leave(timeout)
	return errors.Join(err, p.Shutdown())
}

// Shutdown stops the member without announcing it.
func (p *Pool) Shutdown() error {
	err := p.list.Shutdown()
	p.mu.Lock()
	for _, ch := range p.subs {
		close(ch)
	}
	p.subs = nil
	p.mu.Unlock()
	return err
}

func (p *Pool) record(n *memberlist.Node, kind string) {
	m := Member{
		Name:  n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State: stateName(n.State),
		Since: time.Now().UTC(),
	}
	if kind == "leave" && m.State == StateAlive {
		m.State = StateDead
	}
	meta, err := wire.DecodeNodeMeta(n.Meta)
	if err != nil {
		m.MetaErr = err.Error()
	}
	m.Meta = meta
	p.mu.Lock()
	if old, ok := p.members[n.Name]; ok && old.Addr != m.Addr {
		p.log.Warn("gossip member changed address", "member", n.Name, "from", old.Addr, "to", m.Addr, "was", old.State)
	}
	p.members[n.Name] = m
	delete(p.candidates, n.Name) // registered since
	p.pruneLocked(time.Now())
	subs := p.subs
	for _, ch := range subs {
		select {
		case ch <- Event{Member: m, Kind: kind}:
		default:
			p.log.Warn("gossip subscriber is slow, dropping event", "member", n.Name)
		}
	}
	watch := p.watch
	p.mu.Unlock()
	if watch != nil {
		watch(m)
	}
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return StateAlive
	case memberlist.StateSuspect:
		return StateSuspect
	case memberlist.StateLeft:
		return StateLeft
	default:
		return StateDead
	}
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// delegate serves this member's metadata; berth sends no user messages.
type delegate Pool

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d *delegate) NotifyMsg([]byte)                {}
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *delegate) LocalState(bool) []byte          { return nil }
func (d *delegate) MergeRemoteState([]byte, bool)   {}

// events records membership changes.
type events Pool

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Pool)(e).record(n, "join") }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Pool)(e).record(n, "leave") }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Pool)(e).record(n, "update") }

// JoinRetry joins peers, retrying with backoff until one answers or ctx
// ends: members may start in any order. It returns once joined.
func (p *Pool) JoinRetry(ctx context.Context, peers []string) {
	backoff := 200 * time.Millisecond
	for len(peers) > 0 {
		n, err := p.Join(peers)
		if err == nil {
			p.log.Info("joined gossip pool", "contacted", n, "members", p.NumAlive())
			return
		}
		p.log.Debug("gossip join failed, retrying", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
