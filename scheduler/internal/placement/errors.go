package placement

import (
	"errors"
	"fmt"
)

// The failures of Place. The compute API words each for its callers
// (contract §11.2); match them with errors.Is.
var (
	// ErrNoServers: the node list was empty.
	ErrNoServers = errors.New("no servers")

	// ErrNoHealthyServers: every node was excluded by its health or its admin
	// state (draining, cordoned), none by its capacity.
	ErrNoHealthyServers = errors.New("no healthy servers")

	// ErrNoCapacity: no available node fits the request (resources, GPU,
	// architecture, labels or max workspaces), whatever the region.
	ErrNoCapacity = errors.New("no server has room")

	// ErrNoRegionCapacity: some nodes fit the request, but none in the
	// required region. Place returns it as a *RegionError, which names the
	// region in its text.
	ErrNoRegionCapacity = errors.New("no room in the required region")
)

// RegionError is the failure when nodes fit the request but none of them is in
// the required region. errors.Is(err, ErrNoRegionCapacity) reports true for it.
type RegionError struct {
	Region string
}

func (e *RegionError) Error() string {
	return fmt.Sprintf("no room in region %s", e.Region)
}

// Is makes a *RegionError match ErrNoRegionCapacity.
func (e *RegionError) Is(target error) bool {
	return target == ErrNoRegionCapacity
}
