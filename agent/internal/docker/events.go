package docker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// eventActions are the container actions Events reports.
var eventActions = []events.Action{
	events.ActionCreate, events.ActionStart, events.ActionDie, events.ActionOOM, events.ActionDestroy,
	events.ActionStop, events.ActionKill, events.ActionPause, events.ActionUnPause,
}

// eventAttrs are the attributes Docker adds to a container event besides the
// container's labels; they are left out of ContainerEvent.Labels.
var eventAttrs = map[string]bool{"image": true, "name": true, "exitCode": true, "signal": true}

// Events streams the daemon's events about berth containers (label
// berth.managed=true): create, start, die (with the exit code), oom, stop,
// kill, pause, unpause and destroy. Both channels are closed when ctx ends
// or the daemon's stream fails; in the latter case one error is sent first.
// The subscription is live when Events returns; earlier events are not
// replayed, so after an error the caller subscribes again and reconciles
// from List.
func (c *Client) Events(ctx context.Context) (<-chan wire.ContainerEvent, <-chan error) {
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", wire.LabelManaged+"=true"),
	)
	for _, a := range eventActions {
		args.Add("event", string(a))
	}
	ctx, cancel := context.WithCancel(ctx)
	msgs, errs := c.api.Events(ctx, events.ListOptions{Filters: args}) // returns once the daemon answered
	out := make(chan wire.ContainerEvent, 16)
	outErr := make(chan error, 1)
	go func() {
		defer cancel()
		defer close(outErr)
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if ctx.Err() == nil {
					if err == nil {
						err = errors.New("stream ended")
					}
					outErr <- wrapErr(err, "docker events")
				}
				return
			case m := <-msgs:
				select {
				case out <- toWireEvent(m):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, outErr
}

func toWireEvent(m events.Message) wire.ContainerEvent {
	ev := wire.ContainerEvent{
		ContainerID: m.Actor.ID,
		Action:      string(m.Action),
		WorkspaceID: m.Actor.Attributes[wire.LabelWorkspaceID],
	}
	switch {
	case m.TimeNano != 0:
		ev.Time = time.Unix(0, m.TimeNano).UTC()
	case m.Time != 0:
		ev.Time = time.Unix(m.Time, 0).UTC()
	}
	if code, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
		ev.ExitCode = code
	}
	for k, v := range m.Actor.Attributes {
		if eventAttrs[k] {
			continue
		}
		if ev.Labels == nil {
			ev.Labels = make(map[string]string, len(m.Actor.Attributes))
		}
		ev.Labels[k] = v
	}
	return ev
}
