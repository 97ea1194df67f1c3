package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/logging"
)

// adminGet calls the running scheduler's admin API (BERTH_URL, default
// http://127.0.0.1:3003) with BERTH_ADMIN_TOKEN and decodes the answer.
func adminGet(ctx context.Context, path string, out any) error {
	base := os.Getenv("BERTH_URL")
	if base == "" {
		base = "http://127.0.0.1:3003"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv("BERTH_ADMIN_TOKEN"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach scheduler at %s (set BERTH_URL): %w", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

func members(ctx context.Context, _ []string) error {
	var ms []gossip.Member
	if err := adminGet(ctx, "/admin/members", &ms); err != nil {
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
