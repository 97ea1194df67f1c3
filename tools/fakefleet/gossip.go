package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/hashicorp/memberlist"
)

// startGossip makes every agent a memberlist member and joins each group
// to its leader (see the package comment).
func startGossip(agents []*agent, keys [][]byte, o options) error {
	group := max(o.group, 1)
	for i, a := range agents {
		leader := agents[i-i%group]
		a.leader = leader == a
		keyring, err := memberlist.NewKeyring(keys[1:], keys[0])
		if err != nil {
			return err
		}
		meta, err := a.meta().Encode()
		if err != nil {
			return err
		}
		admit := admitOnly{a.id: true, o.scheduler: true, leader.id: true}
		if a.leader {
			for _, m := range agents[i:min(i+group, len(agents))] {
				admit[m.id] = true
			}
		}
		c := memberlist.DefaultLANConfig()
		c.Name = a.id
		c.BindAddr, c.BindPort = "127.0.0.1", 0
		c.Keyring, c.Label = keyring, o.label
		c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
		c.ProbeInterval, c.ProbeTimeout = time.Minute, 3*time.Second
		// Gossip goes only where there is news (a refutation of a suspicion,
		// above all); a leader relays its group's, so it gossips often.
		c.GossipInterval = time.Second
		if a.leader {
			c.GossipInterval, c.GossipNodes = 200*time.Millisecond, 4
		}
		c.PushPullInterval = 0 // the scheduler's own push-pulls still reach the fakes
		c.Delegate = metaDelegate(meta)
		c.Alive = admit
		c.Logger = log.New(io.Discard, "", 0)
		list, err := memberlist.Create(c)
		if err != nil {
			return fmt.Errorf("gossip of %s: %w", a.id, err)
		}
		a.list = list
		if !a.leader {
			if _, err := list.Join([]string{leader.list.LocalNode().FullAddress().Addr}); err != nil {
				return fmt.Errorf("%s joins %s: %w", a.id, leader.id, err)
			}
		}
	}
	return nil
}

// admitOnly is an alive delegate that admits the named members only.
type admitOnly map[string]bool

var errNotInGroup = errors.New("fakefleet: not in this member's group")

func (a admitOnly) NotifyAlive(n *memberlist.Node) error {
	if a[n.Name] {
		return nil
	}
	return errNotInGroup
}

// metaDelegate serves a fixed metadata.
type metaDelegate []byte

func (d metaDelegate) NodeMeta(limit int) []byte {
	if len(d) > limit {
		return nil
	}
	return d
}
func (metaDelegate) NotifyMsg([]byte)                {}
func (metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (metaDelegate) LocalState(bool) []byte          { return nil }
func (metaDelegate) MergeRemoteState([]byte, bool)   {}
