package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/logging"
)

// adminClient calls the running scheduler's admin API: BERTH_URL (default
// http://127.0.0.1:3003) with the admin token BERTH_ADMIN_TOKEN.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func adminFromEnv() adminClient {
	base := os.Getenv("BERTH_URL")
	if base == "" {
		base = "http://127.0.0.1:3003"
	}
	// Adding a server waits for the scheduler's check of the agent.
	return adminClient{base: strings.TrimRight(base, "/"), token: os.Getenv("BERTH_ADMIN_TOKEN"),
		http: &http.Client{Timeout: 30 * time.Second}}
}

// do sends in (as JSON, if not nil) and decodes a 2xx answer into out (if
// not nil). Other answers become an error with the API's detail.
func (c adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach scheduler at %s (set BERTH_URL): %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Detail any `json:"detail"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Detail != nil {
			if s, ok := e.Detail.(string); ok {
				return fmt.Errorf("%s (%s)", s, resp.Status)
			}
			d, _ := json.Marshal(e.Detail)
			return fmt.Errorf("%s (%s)", d, resp.Status)
		}
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, strings.TrimSpace(string(raw)))
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func members(ctx context.Context, _ []string) error {
	var ms []gossip.Member
	if err := adminFromEnv().do(ctx, http.MethodGet, "/admin/members", nil, &ms); err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tGOSSIP ADDRESS\tROLE\tAGENT API\tREGION\tARCH\tCPU\tMEM FREE/TOTAL\tDISK FREE/TOTAL\tWORKSPACES\tVERSION")
	for _, m := range ms {
		role := map[string]string{"a": "agent", "s": "scheduler"}[m.Meta.Role]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			m.Name, m.State, m.Addr, role, dash(m.Meta.AgentAddr), dash(m.Meta.Region), dash(m.Meta.Architecture),
			cpu(m.Meta.CPUMilli, m.Meta.CPUUsedPct),
			pair(m.Meta.MemFreeMB, m.Meta.MemTotalMB, "MB"), pair(m.Meta.DiskFreeGB, m.Meta.DiskTotalGB, "GB"),
			m.Meta.Workspaces, dash(m.Meta.Version))
	}
	return w.Flush()
}

func backup(ctx context.Context, args []string) error {
	cfg, rest, err := loadConfig(args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("usage: scheduler backup [--data-dir DIR] FILE")
	}
	db, err := registry.Open(ctx, cfg.DBPath(), logging.New("backup", "warn", false))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Backup(ctx, rest[0]); err != nil {
		return err
	}
	fmt.Printf("backed up %s to %s\n", cfg.DBPath(), rest[0])
	return nil
}

// check runs SQLite's integrity check on the registry; it is safe while the
// scheduler serves (WAL readers do not block the writer).
func check(ctx context.Context, args []string) error {
	cfg, _, err := loadConfig(args)
	if err != nil {
		return err
	}
	db, err := registry.Open(ctx, cfg.DBPath(), logging.New("check", "warn", false))
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.IntegrityCheck(ctx)
	if err != nil {
		return err
	}
	fmt.Println(res)
	if res != "ok" {
		return fmt.Errorf("integrity check failed")
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cpu(milli, usedPct int64) string {
	if milli == 0 {
		return "-"
	}
	return fmt.Sprintf("%g cores (%d%% used)", float64(milli)/1000, usedPct)
}

func pair(free, total int64, unit string) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d %s", free, total, unit)
}

const serversUsage = `usage:
  scheduler servers list
  scheduler servers add --id ID --address HOST[:PORT] [--port 7443] [--region R] [--labels k=v,...] [--name NAME]
  scheduler servers add --from-discovered ID      (an agent that gossips but is not registered)
  scheduler servers drain ID                      (keeps its workspaces, takes no new ones)
  scheduler servers activate ID
  scheduler servers remove ID [--force]           (--force drops the records of its workspaces)`

// servers manages the registered servers through the admin API.
func servers(ctx context.Context, args []string) error {
	return runServers(ctx, adminFromEnv(), os.Stdout, args)
}

func runServers(ctx context.Context, c adminClient, out io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New(serversUsage)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "list", "ls":
		var list admin.ServerList
		if err := c.do(ctx, http.MethodGet, "/admin/servers", nil, &list); err != nil {
			return err
		}
		return writeServers(out, list)
	case "add":
		return serversAdd(ctx, c, out, rest)
	case "drain", "activate", "cordon":
		if len(rest) != 1 {
			return errors.New(serversUsage)
		}
		state := map[string]string{"drain": "draining", "activate": "active", "cordon": "cordoned"}[cmd]
		var s admin.Server
		if err := c.do(ctx, http.MethodPatch, "/admin/servers/"+url.PathEscape(rest[0]), admin.ServerPatch{State: &state}, &s); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s is %s (%d %s)\n", s.ID, s.State, s.Workspaces, plural(s.Workspaces, "workspace", "workspaces"))
		return nil
	case "remove", "rm":
		fs := flag.NewFlagSet("servers remove", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		force := fs.Bool("force", false, "also drop the records of the server's workspaces")
		pos, err := parseInterspersed(fs, rest)
		if err != nil || len(pos) != 1 {
			return errors.New(serversUsage)
		}
		path := "/admin/servers/" + url.PathEscape(pos[0])
		if *force {
			path += "?force=true"
		}
		if err := c.do(ctx, http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed %s\n", pos[0])
		return nil
	}
	return errors.New(serversUsage)
}

func serversAdd(ctx context.Context, c adminClient, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("servers add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var req admin.CreateServerRequest
	var address, labels string
	fs.StringVar(&req.ID, "id", "", "server id (the name its agent certificate carries)")
	fs.StringVar(&req.Name, "name", "", "display name (default: the id)")
	fs.StringVar(&address, "address", "", "host name or IP of the agent, optionally with :port")
	fs.IntVar(&req.AgentPort, "port", admin.DefaultAgentPort, "agent mTLS port")
	fs.StringVar(&req.Region, "region", "", "placement region")
	fs.StringVar(&labels, "labels", "", "placement labels, k=v,k=v")
	fs.StringVar(&req.FromDiscovered, "from-discovered", "", "add an agent that gossips but is not registered")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 0 {
		return errors.New(serversUsage)
	}
	portSet := false
	fs.Visit(func(f *flag.Flag) { portSet = portSet || f.Name == "port" })
	if req.FromDiscovered != "" && !portSet {
		req.AgentPort = 0 // the gossiped one
	}
	if host, port, err := net.SplitHostPort(address); err == nil {
		address = host
		if !portSet {
			if req.AgentPort, err = strconv.Atoi(port); err != nil {
				return fmt.Errorf("--address %s: bad port", address)
			}
		}
	}
	req.IPAddress = address
	if labels != "" {
		req.Labels = map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || k == "" {
				return fmt.Errorf("--labels: %q is not key=value", kv)
			}
			req.Labels[k] = v
		}
	}
	if req.ID == "" && req.FromDiscovered == "" {
		return errors.New("servers add: --id and --address are required (or --from-discovered)")
	}
	var s admin.Server
	if err := c.do(ctx, http.MethodPost, "/admin/servers", req, &s); err != nil {
		return err
	}
	fmt.Fprintf(out, "added %s at %s (state %s, health %s)\n", s.ID, s.AgentAddress, s.State, s.Health)
	return nil
}

// parseInterspersed parses flags that may come after positional arguments
// ("remove ws-1 --force") and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// writeServers renders the server list as tables.
func writeServers(out io.Writer, list admin.ServerList) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tHEALTH\tAGENT\tREGION\tCPU RES/EFF\tMEMORY RES/EFF\tDISK RES/EFF\tCPU USE\tWORKSPACES\tLAST ERROR")
	for _, s := range list.Servers {
		use := "-"
		if s.Use != nil && s.Use.CPUCores > 0 {
			use = fmt.Sprintf("%d%%", s.Use.CPUPercent)
		}
		limit := "∞"
		if s.MaxWorkspaces > 0 {
			limit = strconv.Itoa(s.MaxWorkspaces)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s/%s\t%s/%s\t%s/%s\t%s\t%d/%s\t%s\n",
			s.ID, s.State, s.Health, s.AgentAddress, dash(s.Region),
			strconv.FormatFloat(s.Reserved.CPU, 'f', -1, 64), strconv.FormatFloat(s.Effective.CPU, 'f', -1, 64),
			mib(s.Reserved.MemoryMB), mib(s.Effective.MemoryMB),
			strconv.FormatInt(s.Reserved.DiskGB, 10), strconv.FormatInt(s.Effective.DiskGB, 10)+" GB",
			use, s.Workspaces, limit, dash(s.LastError))
	}
	if len(list.Servers) == 0 {
		fmt.Fprintln(w, "(no servers registered)")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(list.Discovered) == 0 {
		return nil
	}
	fmt.Fprintln(out, "\nDiscovered (gossiping, not registered; add with: scheduler servers add --from-discovered ID)")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tAGENT\tREGION\tARCH\tGOSSIP\tVERSION")
	for _, d := range list.Discovered {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, dash(d.AgentAddress), dash(d.Region), dash(d.Architecture),
			d.GossipState, dash(d.Version))
	}
	return w.Flush()
}

// mib formats megabytes, in GB from 1 GB up.
func mib(mb int64) string {
	if mb >= 1024 {
		return strconv.FormatFloat(float64(mb)/1024, 'f', 1, 64) + " GB"
	}
	return strconv.FormatInt(mb, 10) + " MB"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

const raftUsage = `usage: scheduler raft list | add ID RAFT_ADDR | remove ID
  The schedulers of a raft cluster (high availability), through the admin API
  of BERTH_URL (any scheduler: a follower forwards add and remove to the
  leader) with BERTH_ADMIN_TOKEN. A new scheduler usually joins by itself
  (BERTH_RAFT_JOIN); add is for one started without it.`

func raftCommand(ctx context.Context, args []string) error {
	return runRaft(ctx, adminFromEnv(), os.Stdout, args)
}

func runRaft(ctx context.Context, c adminClient, out io.Writer, args []string) error {
	switch {
	case len(args) == 1 && (args[0] == "list" || args[0] == "ls"):
		var s struct {
			ID, State    string
			LeaderID     string `json:"leader_id"`
			Term         uint64
			CommitIndex  uint64 `json:"commit_index"`
			AppliedIndex uint64 `json:"applied_index"`
			Members      []struct {
				ID, Addr       string
				Voter, Leading bool
			}
		}
		if err := c.do(ctx, http.MethodGet, "/admin/cluster/raft", nil, &s); err != nil {
			return err
		}
		fmt.Fprintf(out, "asked %s: %s, term %d, commit index %d, applied %d\n", s.ID, s.State, s.Term, s.CommitIndex, s.AppliedIndex)
		w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tRAFT ADDRESS\tVOTER\tLEADER")
		for _, m := range s.Members {
			fmt.Fprintf(w, "%s\t%s\t%v\t%v\n", m.ID, m.Addr, m.Voter, m.Leading)
		}
		return w.Flush()
	case len(args) == 3 && args[0] == "add":
		if err := c.do(ctx, http.MethodPost, "/admin/cluster/raft/members", admin.RaftMember{ID: args[1], Addr: args[2]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "added %s (%s)\n", args[1], args[2])
		return nil
	case len(args) == 2 && (args[0] == "remove" || args[0] == "rm"):
		if err := c.do(ctx, http.MethodDelete, "/admin/cluster/raft/members/"+url.PathEscape(args[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed %s\n", args[1])
		return nil
	}
	return errors.New(raftUsage)
}
