package podexapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// HardwareSpecs is GET /api/billing/hardware-specs (bearer token), parsed
// as §9.1 says: items missing id, tier, display_name, vcpu or memory_mb are
// skipped, and so are those with is_available false; architecture defaults
// to x86_64 and is normalised (amd64); storage_gb defaults to 20;
// hourly_rate (dollars; a number or a decimal string) becomes cents,
// rounded (quirk §14.18: the Python service truncated 0.29 to 28);
// hourly_rate_cents wins when given. Specs come in sort_order, else in the
// list's order.
func (c *Client) HardwareSpecs(ctx context.Context) ([]tiers.Spec, error) {
	var raw []map[string]json.RawMessage
	err := c.do(ctx, call{op: "billing.hardware_specs", method: http.MethodGet, path: "/api/billing/hardware-specs",
		auth: bearerToken, out: &raw})
	if err != nil {
		return nil, err
	}
	return parseSpecs(raw), nil
}

func parseSpecs(raw []map[string]json.RawMessage) []tiers.Spec {
	type ordered struct {
		spec  tiers.Spec
		order float64
	}
	var list []ordered
	for i, m := range raw {
		_, hasID := field(m, "id")
		tier, okTier := str(m, "tier")
		name, okName := str(m, "display_name")
		vcpu, okCPU := num(m, "vcpu")
		mem, okMem := num(m, "memory_mb")
		if !hasID || !okTier || tier == "" || !okName || !okCPU || !okMem {
			continue
		}
		if avail, ok := boolean(m, "is_available"); ok && !avail {
			continue
		}
		s := tiers.Spec{Tier: strings.ToLower(tier), DisplayName: name, VCPU: vcpu, MemoryMB: int64(mem),
			Architecture: "x86_64", StorageGB: 20}
		if a, ok := str(m, "architecture"); ok && a != "" {
			s.Architecture = a
		}
		s.Architecture = wire.NormalizeArch(s.Architecture)
		if v, ok := num(m, "storage_gb"); ok {
			s.StorageGB = int64(v)
		}
		if v, ok := num(m, "bandwidth_mbps"); ok {
			s.BandwidthMbps = int64(v)
		}
		s.IsGPU, _ = boolean(m, "is_gpu")
		s.GPUType, _ = str(m, "gpu_type")
		if v, ok := num(m, "gpu_count"); ok {
			s.GPUCount = int(v)
		}
		if v, ok := num(m, "hourly_rate_cents"); ok {
			s.HourlyRateCents = int64(math.Round(v))
		} else if v, ok := num(m, "hourly_rate"); ok {
			s.HourlyRateCents = int64(math.Round(v * 100))
		}
		s.RequiresSubscription, _ = str(m, "requires_subscription")
		order := float64(i)
		if v, ok := num(m, "sort_order"); ok {
			order = v
		}
		s.SortOrder = int(order)
		list = append(list, ordered{s, order})
	}
	slices.SortStableFunc(list, func(a, b ordered) int {
		switch {
		case a.order < b.order:
			return -1
		case a.order > b.order:
			return 1
		}
		return 0
	})
	out := make([]tiers.Spec, len(list))
	for i, o := range list {
		out[i] = o.spec
	}
	return out
}

// field is m[key] when present and not null.
func field(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	v, ok := m[key]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, false
	}
	return v, true
}

func str(m map[string]json.RawMessage, key string) (string, bool) {
	v, ok := field(m, key)
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// num reads a JSON number, or a string holding one (pydantic serialises
// Decimal fields as strings, §1.3).
func num(m map[string]json.RawMessage, key string) (float64, bool) {
	v, ok := field(m, key)
	if !ok {
		return 0, false
	}
	var f float64
	if json.Unmarshal(v, &f) == nil {
		return f, true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

func boolean(m map[string]json.RawMessage, key string) (bool, bool) {
	v, ok := field(m, key)
	if !ok {
		return false, false
	}
	var b bool
	if json.Unmarshal(v, &b) != nil {
		return false, false
	}
	return b, true
}

// Catalog is the tier catalogue the orchestrator uses with the podex API
// (orchestrator.Catalog): the API's hardware specs, fetched at start and
// every Config.SpecsTTL; when a fetch fails the last answer stays (stale),
// and until the API has answered once the built-in table (§9.1) serves.
// Create, scale-options and scale all read this one catalogue. Lookups
// never wait for the API. Safe for concurrent use; Run owns its loop.
type Catalog struct {
	c   *Client
	log hclog.Logger

	mu      sync.RWMutex
	cat     tiers.Catalog
	fetched time.Time // zero: never answered (built-in table)
	lastErr error     // of the last fetch; nil after a success
}

// NewCatalog returns the catalogue over c, serving the built-in table
// until the first fetch.
func NewCatalog(c *Client) *Catalog {
	return &Catalog{c: c, log: c.log.Named("specs"), cat: tiers.Builtin()}
}

func (k *Catalog) current() tiers.Catalog {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.cat
}

// Lookup finds a tier by name.
func (k *Catalog) Lookup(name string) (tiers.Spec, bool) { return k.current().Lookup(name) }

// Resolve returns the tier's spec, or the fallback when it is unknown.
func (k *Catalog) Resolve(name string) tiers.Spec { return k.current().Resolve(name) }

// All returns the tiers in sort order.
func (k *Catalog) All() []tiers.Spec { return k.current().All() }

// CatalogInfo says where the catalogue comes from now.
type CatalogInfo struct {
	Source    string    // "api", or "builtin" before the API's first answer
	FetchedAt time.Time // of the answer in use; zero for builtin
	Stale     bool      // the last fetch failed: the answer in use is older than the TTL
	LastError string
	Tiers     int
}

// Info describes the catalogue in use.
func (k *Catalog) Info() CatalogInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	i := CatalogInfo{Source: "builtin", FetchedAt: k.fetched, Tiers: len(k.cat.All())}
	if !k.fetched.IsZero() {
		i.Source = "api"
	}
	if k.lastErr != nil {
		i.LastError = k.lastErr.Error()
		i.Stale = !k.fetched.IsZero()
	}
	return i
}

// errNoSpecs: the API answered a list without one usable spec; the
// catalogue in use is kept rather than emptied.
var errNoSpecs = errors.New("hardware specs: no usable spec in the answer")

// Refresh fetches the specs once and, on success, serves them from now on.
func (k *Catalog) Refresh(ctx context.Context) error {
	specs, err := k.c.HardwareSpecs(ctx)
	if err == nil && len(specs) == 0 {
		err = errNoSpecs
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastErr = err
	if err != nil {
		return err
	}
	old := k.cat.All()
	k.cat, k.fetched = tiers.New(specs), time.Now()
	if !slices.Equal(old, k.cat.All()) {
		k.log.Info("hardware specs updated", "tiers", len(specs))
	}
	return nil
}

// Run fetches at once and every TTL until ctx ends; after a failed fetch it
// tries again sooner (the client's backoff base doubled per failure, at
// most the TTL), keeping what it has.
func (k *Catalog) Run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		wait := k.c.cfg.SpecsTTL
		switch err := k.Refresh(ctx); {
		case err == nil:
			failures = 0
		case ctx.Err() == nil:
			failures++
			wait = min(k.c.cfg.SpecsTTL, k.c.backoff(failures+2))
			k.log.Warn(fmt.Sprintf("hardware specs fetch failed; keeping the %s catalogue", k.Info().Source),
				"error", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}
