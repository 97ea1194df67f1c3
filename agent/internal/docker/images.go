package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/image"
)

// Images lists the local daemon's images (top-level ones, like `docker
// images`). Untagged images have no tags.
func (c *Client) Images(ctx context.Context) ([]wire.Image, error) {
	list, err := c.api.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return nil, wrapErr(err, "list images")
	}
	out := make([]wire.Image, 0, len(list))
	for _, img := range list {
		tags := []string{}
		for _, t := range img.RepoTags {
			if t != "<none>:<none>" {
				tags = append(tags, t)
			}
		}
		out = append(out, wire.Image{
			ID:      img.ID,
			Tags:    tags,
			Size:    img.Size,
			Created: time.Unix(img.Created, 0).UTC(),
		})
	}
	return out, nil
}

// Pull pulls ref (":latest" when it has no tag) and calls progress, when
// not nil, for every message of the daemon's progress stream as it arrives,
// including a failure message (Error set). It never sets Done: the caller
// knows when Pull has returned. A pull that fails in the stream, not only
// one refused up front, returns an error: ErrBadRequest for a malformed
// reference, ErrNotFound or ErrDocker from the daemon otherwise.
func (c *Client) Pull(ctx context.Context, ref string, progress func(wire.PullProgress)) error {
	if err := ValidateImageRef(ref); err != nil {
		return err
	}
	body, err := c.api.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return wrapErr(err, "pull %s", ref)
	}
	defer body.Close()
	if err := decodePullStream(body, progress); err != nil {
		if errors.Is(err, ErrDocker) {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		return wrapErr(err, "pull %s", ref)
	}
	return nil
}

// pullMessage is the part of Docker's JSON progress messages berth reads.
type pullMessage struct {
	Status   string `json:"status"`
	ID       string `json:"id"`
	Progress string `json:"progress"`
	Error    string `json:"error"`
	Detail   struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// decodePullStream reads Docker's stream of JSON progress messages until EOF,
// forwarding each to progress, and returns an ErrDocker error for the first
// error message in it.
func decodePullStream(r io.Reader, progress func(wire.PullProgress)) error {
	dec := json.NewDecoder(r)
	for {
		var m pullMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		msg := m.Detail.Message
		if msg == "" {
			msg = m.Error
		}
		if progress != nil {
			progress(wire.PullProgress{Status: m.Status, ID: m.ID, Progress: m.Progress, Error: msg})
		}
		if msg != "" {
			return fmt.Errorf("%w: %s", ErrDocker, msg)
		}
	}
}
