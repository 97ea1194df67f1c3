package gossip

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// ParseKeys reads a gossip key file: one base64 key (16, 24 or 32 bytes)
// per line, the first the primary (the one this member encrypts with), the
// others also accepted when decrypting. Blank lines and lines starting with
// '#' are skipped. Rotating the key without a restart is three edits of
// this file on every member, each applied everywhere before the next
// (scripts/pki.sh gossip-key-add, gossip-key-use, gossip-key-remove):
//
//  1. add:    OLD, NEW   (everyone still encrypts with OLD, accepts NEW)
//  2. use:    NEW, OLD   (everyone encrypts with NEW, still accepts OLD)
//  3. remove: NEW
func ParseKeys(b []byte) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("gossip key line %d: %w", i+1, err)
		}
		if err := validKey(k); err != nil {
			return nil, fmt.Errorf("gossip key line %d: %w", i+1, err)
		}
		if slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return nil, fmt.Errorf("gossip key line %d: a repeated key", i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("gossip key file holds no key")
	}
	return keys, nil
}

func validKey(k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("want 16, 24 or 32 bytes, got %d", len(k))
}

// Keys returns the keyring, the primary first.
func (p *Pool) Keys() [][]byte { return p.keyring.GetKeys() }

// SetKeys makes the keyring exactly keys, keys[0] the primary: new keys are
// installed, the primary switched, then keys not listed are removed.
func (p *Pool) SetKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errors.New("gossip: SetKeys needs at least one key")
	}
	for _, k := range keys {
		if err := p.keyring.AddKey(k); err != nil {
			return fmt.Errorf("gossip: add key: %w", err)
		}
	}
	if err := p.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("gossip: use key: %w", err)
	}
	for _, k := range p.keyring.GetKeys() {
		if !slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			if err := p.keyring.RemoveKey(k); err != nil {
				return fmt.Errorf("gossip: remove key: %w", err)
			}
		}
	}
	return nil
}

// WatchKeyFile re-reads path every interval until ctx ends and installs its
// keys (ParseKeys, SetKeys) when its contents change. A file that does not
// parse keeps the keyring as it is and is logged once per change. The file
// is compared by contents, so an in-place rewrite (what a single-file bind
// mount sees) and a rename both count.
func (p *Pool) WatchKeyFile(ctx context.Context, path string, every time.Duration) {
	var last []byte
	var lastErr string
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Equal(b, last) {
			continue
		}
		if err == nil {
			last = b
			err = p.loadKeys(b)
		}
		if err != nil && err.Error() != lastErr {
			p.log.Error("gossip key file refused, keeping the keyring", "path", path, "error", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
}

// loadKeys installs the keys of a key file's contents, logging a change.
func (p *Pool) loadKeys(b []byte) error {
	keys, err := ParseKeys(b)
	if err != nil {
		return err
	}
	if slices.EqualFunc(keys, p.Keys(), bytes.Equal) {
		return nil
	}
	if err := p.SetKeys(keys); err != nil {
		return err
	}
	p.log.Info("gossip keyring changed", "keys", len(keys), "primary", KeyID(keys[0]))
	return nil
}

// KeyID names a key in logs without revealing it: the first bytes of its
// SHA-256, as base64.
func KeyID(k []byte) string {
	sum := sha256.Sum256(k)
	return base64.RawURLEncoding.EncodeToString(sum[:6])
}
