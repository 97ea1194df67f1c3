package podexapi

import (
	"context"
	"net/http"
	"time"
)

// UsageEvent is one usage record of POST /api/billing/usage/record (§7,
// the podex API's UsageEventInput). The API de-duplicates on user_id:id, so
// an event sent again with its id is counted once.
type UsageEvent struct {
	ID              string        `json:"id"` // ^[a-zA-Z0-9_-]+$
	UserID          string        `json:"user_id"`
	SessionID       string        `json:"session_id"`
	WorkspaceID     string        `json:"workspace_id"`
	UsageType       string        `json:"usage_type"` // UsageComputeSeconds
	Quantity        int64         `json:"quantity"`   // = DurationSeconds
	Unit            string        `json:"unit"`       // "seconds"
	Tier            string        `json:"tier"`
	DurationSeconds int64         `json:"duration_seconds"`
	Metadata        UsageMetadata `json:"metadata"`
	CreatedAt       string        `json:"created_at"` // ISO-8601 UTC: the end of the interval
}

// UsageMetadata is a compute event's metadata.
type UsageMetadata struct {
	ContainerID string `json:"container_id"`
	ServerID    string `json:"server_id"`
}

// UsageComputeSeconds is the usage type of compute time.
const UsageComputeSeconds = "compute_seconds"

// ComputeEvent is the usage event of seconds of compute time of a
// workspace, ending at end.
func ComputeEvent(id, userID, sessionID, workspaceID, tier, serverID, containerID string, seconds int64, end time.Time) UsageEvent {
	return UsageEvent{ID: id, UserID: userID, SessionID: sessionID, WorkspaceID: workspaceID,
		UsageType: UsageComputeSeconds, Quantity: seconds, Unit: "seconds", Tier: tier, DurationSeconds: seconds,
		Metadata: UsageMetadata{ContainerID: containerID, ServerID: serverID}, CreatedAt: ISOTime(end)}
}

// ISOTime formats t as pydantic v2 does: UTC with a Z, microseconds only
// when they are not zero.
func ISOTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}

// RecordUsage is POST /api/billing/usage/record (bearer token) with
// {"events": events}. Any 2xx means the API has them all.
func (c *Client) RecordUsage(ctx context.Context, events []UsageEvent) error {
	return c.do(ctx, call{op: "billing.usage_record", method: http.MethodPost, path: "/api/billing/usage/record",
		body: map[string]any{"events": events}, auth: bearerToken})
}
