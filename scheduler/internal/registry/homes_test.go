package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHomeClaimAndOwnership(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s1"})
	mustCreateServer(t, db, Server{ID: "s2"})

	mustReserve(t, db, Workspace{ID: "w", UserID: "alice", ServerID: "s1"}, Limits{})
	h, err := db.GetHome(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if h.UserID != "alice" || h.ServerID != "s1" {
		t.Fatalf("home %+v; want alice's on s1", h)
	}
	if err := db.DeleteWorkspace(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	// The home outlives the record and keeps the id for its owner.
	_, err = db.ReserveAndInsert(ctx, Workspace{ID: "w", UserID: "mallory", ServerID: "s2"}, Credentials{}, Limits{})
	if !errors.Is(err, ErrOwnedByOther) {
		t.Fatalf("another owner's reserve: %v; want ErrOwnedByOther", err)
	}
	if _, err := db.GetWorkspace(ctx, "w"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused reserve left a row: %v", err)
	}
	if err := db.RequestHomePurge(ctx, "w", "mallory"); !errors.Is(err, ErrOwnedByOther) {
		t.Fatalf("another owner's purge: %v; want ErrOwnedByOther", err)
	}
	if err := db.RequestHomePurge(ctx, "w", "alice"); err != nil {
		t.Fatal(err)
	}
	purge, err := db.ListHomes(ctx, HomeFilter{Purge: true})
	if err != nil || len(purge) != 1 {
		t.Fatalf("homes to purge: %v, %v; want w", purge, err)
	}
	// The owner comes back before the cleanup: the purge is cancelled and the
	// home stays where it is even when the new row is placed elsewhere (the
	// orchestrator moves it).
	mustReserve(t, db, Workspace{ID: "w", UserID: "alice", ServerID: "s2"}, Limits{})
	if h, _ := db.GetHome(ctx, "w"); h.Purge || h.ServerID != "s1" {
		t.Errorf("home after the owner's re-create: %+v; want on s1, no purge", h)
	}
}

func TestHomeMoveAndLeftovers(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s1"})
	mustCreateServer(t, db, Server{ID: "s2"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "alice", ServerID: "s1"}, Limits{})

	if err := db.BeginHomeMove(ctx, "w", "s2"); err != nil {
		t.Fatal(err)
	}
	if moving, _ := db.ListHomes(ctx, HomeFilter{Moving: true}); len(moving) != 1 || moving[0].MovingTo != "s2" {
		t.Fatalf("moving homes %+v; want w to s2", moving)
	}
	if err := db.AbortHomeMove(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if h, _ := db.GetHome(ctx, "w"); h.ServerID != "s1" || h.MovingTo != "" {
		t.Fatalf("after an aborted move: %+v; want on s1", h)
	}
	if err := db.BeginHomeMove(ctx, "w", "s2"); err != nil {
		t.Fatal(err)
	}
	h, err := db.FinishHomeMove(ctx, "w", "s2")
	if err != nil {
		t.Fatal(err)
	}
	if h.ServerID != "s2" || h.MovingTo != "" {
		t.Fatalf("after the move: %+v; want on s2", h)
	}
	left, err := db.ListLeftovers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"w@s1"}, leftoverKeys(left)); diff != "" {
		t.Errorf("leftovers (-want +got):\n%s", diff)
	}
	// Back to s1 before the old copy went: it is the live copy again.
	if _, err := db.FinishHomeMove(ctx, "w", "s1"); err != nil {
		t.Fatal(err)
	}
	left, _ = db.ListLeftovers(ctx)
	if diff := cmp.Diff([]string{"w@s2"}, leftoverKeys(left)); diff != "" {
		t.Errorf("leftovers after moving back (-want +got):\n%s", diff)
	}
	if err := db.DeleteLeftover(ctx, "w", "s2"); err != nil {
		t.Fatal(err)
	}
	if left, _ := db.ListLeftovers(ctx); len(left) != 0 {
		t.Errorf("leftovers %v after delete", left)
	}
}

func TestHomeLostWithItsServer(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s1"})
	mustCreateServer(t, db, Server{ID: "s2"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "alice", ServerID: "s1"}, Limits{})
	if err := db.DeleteWorkspace(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteServer(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	h, err := db.GetHome(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Lost() || h.UserID != "alice" {
		t.Fatalf("home %+v; want lost, still alice's", h)
	}
	// A lost home starts anew where the next row is placed.
	mustReserve(t, db, Workspace{ID: "w", UserID: "alice", ServerID: "s2"}, Limits{})
	if h, _ := db.GetHome(ctx, "w"); h.ServerID != "s2" {
		t.Errorf("home %+v; want on s2", h)
	}
}

func TestReleaseNewHome(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s1"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "alice", ServerID: "s1"}, Limits{})
	if err := db.DeleteWorkspace(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseNewHome(ctx, "w", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetHome(ctx, "w"); !errors.Is(err, ErrNotFound) {
		t.Errorf("home after release: %v; want none", err)
	}
	left, _ := db.ListLeftovers(ctx)
	if diff := cmp.Diff([]string{"w@s1"}, leftoverKeys(left)); diff != "" {
		t.Errorf("leftovers (-want +got):\n%s", diff)
	}
}

func leftoverKeys(ls []Leftover) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.WorkspaceID+"@"+l.ServerID)
	}
	return out
}
