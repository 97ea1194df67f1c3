package envflag

import (
	"bufio"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"berth/shared/gossip"
)

// Key is one setting: its environment name, flag name, help text, and how
// to store a value.
type Key struct {
	Env  string
	Flag string
	Help string
	Set  func(string) error
}

// String is a Set for a plain string field.
func String(p *string) func(string) error { return func(v string) error { *p = v; return nil } }

// Int is a Key.Set that stores an integer.
func Int(p *int) func(string) error {
	return func(v string) (err error) {
		*p, err = strconv.Atoi(strings.TrimSpace(v))
		return err
	}
}

// Duration is a Key.Set that stores a Go duration ("90s", "2m") or a
// number of seconds ("90").
func Duration(p *time.Duration) func(string) error {
	return func(v string) (err error) {
		*p, err = ParseSeconds(v)
		return err
	}
}

// ParseSeconds reads a Go duration or a number of seconds.
func ParseSeconds(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	d, err := time.ParseDuration(v + "s")
	if err != nil {
		return 0, fmt.Errorf("want seconds or a duration: %w", err)
	}
	return d, nil
}

// Load applies the sources to keys. fileKey names the environment variable
// (and, lower-cased without prefix, the flag "config") that points at the
// optional file. It returns the positional arguments left after the flags.
func Load(name string, args []string, getenv func(string) string, fileKey string, keys []Key) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config", getenv(fileKey), "KEY=VALUE config file")
	flagVals := make([]*string, len(keys))
	for i, k := range keys {
		flagVals[i] = fs.String(k.Flag, "", k.Help+" ("+k.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w\n%s", err, Usage(keys))
	}
	values := map[string]string{}
	if *configFile != "" {
		fileVals, err := ReadEnvFile(*configFile)
		if err != nil {
			return nil, err
		}
		values = fileVals
	}
	for _, k := range keys {
		if v := getenv(k.Env); v != "" {
			values[k.Env] = v
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for i, k := range keys {
		if set[k.Flag] {
			values[k.Env] = *flagVals[i]
		}
	}
	for _, k := range keys {
		if v, ok := values[k.Env]; ok {
			if err := k.Set(v); err != nil {
				return nil, fmt.Errorf("%s=%q: %w", k.Env, v, err)
			}
		}
	}
	return fs.Args(), nil
}

// Usage lists the settings, one per line.
func Usage(keys []Key) string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  --%-22s %-26s %s\n", k.Flag, k.Env, k.Help)
	}
	return b.String()
}

// ReadEnvFile parses KEY=VALUE lines; blank lines and # comments are skipped
// and surrounding quotes removed.
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s:%d: want KEY=VALUE", path, n)
		}
		vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return vals, sc.Err()
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseLabels parses "k=v,k=v".
func ParseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	for _, part := range SplitList(s) {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("label %q: want key=value", part)
		}
		labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return labels, nil
}

// Base64Key decodes a base64 gossip key.
func Base64Key(p *[]byte) func(string) error {
	return func(v string) error {
		b, err := decodeB64(v)
		*p = b
		return err
	}
}

func decodeB64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimSpace(s))
}

// Peer holds the settings both binaries share: their mTLS identity and
// their place in the gossip pool.
type Peer struct {
	TLSCert, TLSKey, TLSCA string
	TLSCRL                 string // optional revocation list; all four files are re-read when they change
	GossipBind             string
	GossipAdvertise        string
	GossipKey              []byte   // the primary key (GossipKeys[0] when read from a file)
	GossipKeys             [][]byte // the keyring read from GossipKeyFile, primary first
	GossipKeyFile          string   // re-read while running: keyring rotation without a restart
	GossipPruneAfter       time.Duration
	ClusterLabel           string
	Join                   []string
}

// PeerKeys describes p's settings; role names the certificate in the help.
func PeerKeys(p *Peer, role string) []Key {
	return []Key{
		{Env: "BERTH_TLS_CERT", Flag: "tls-cert", Help: role + " certificate (PEM)", Set: String(&p.TLSCert)},
		{Env: "BERTH_TLS_KEY", Flag: "tls-key", Help: role + " key (PEM)", Set: String(&p.TLSKey)},
		{Env: "BERTH_TLS_CA", Flag: "tls-ca", Help: "cluster CA (PEM)", Set: String(&p.TLSCA)},
		{Env: "BERTH_TLS_CRL", Flag: "tls-crl", Help: "certificate revocation list of the cluster CA (PEM or DER), re-read when it changes", Set: String(&p.TLSCRL)},
		{Env: "BERTH_GOSSIP_BIND", Flag: "gossip-bind", Help: "memberlist bind host:port", Set: String(&p.GossipBind)},
		{Env: "BERTH_GOSSIP_ADVERTISE", Flag: "gossip-advertise", Help: "memberlist advertise host:port", Set: String(&p.GossipAdvertise)},
		{Env: "BERTH_GOSSIP_KEY", Flag: "gossip-key", Help: "gossip key, base64", Set: Base64Key(&p.GossipKey)},
		{Env: "BERTH_GOSSIP_KEY_FILE", Flag: "gossip-key-file", Help: "file of base64 gossip keys, one a line, the first the primary; re-read when it changes", Set: func(path string) error {
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			keys, err := gossip.ParseKeys(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			p.GossipKeyFile, p.GossipKeys, p.GossipKey = path, keys, keys[0]
			return nil
		}},
		{Env: "BERTH_GOSSIP_PRUNE_AFTER", Flag: "gossip-prune-after", Help: "forget gossip members dead or left this long (default 1h)", Set: Duration(&p.GossipPruneAfter)},
		{Env: "BERTH_CLUSTER_LABEL", Flag: "cluster-label", Help: "gossip cluster label", Set: String(&p.ClusterLabel)},
		{Env: "BERTH_JOIN", Flag: "join", Help: "comma-separated gossip peers", Set: func(v string) error { p.Join = SplitList(v); return nil }},
	}
}
