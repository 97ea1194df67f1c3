package placement

import (
	"errors"
	"fmt"
)

// The failures of Place. Their texts are the failure reasons of the compute
// API contract (§11.2), which the compute API returns verbatim as the 503
// detail; that is why they start with a capital letter.
var (
	// ErrNoServers: the node list was empty.
	ErrNoServers = errors.New("No servers available")

	// ErrNoHealthyServers: every node was excluded by its health or its admin
	// state (draining, cordoned), none by its capacity.
	ErrNoHealthyServers = errors.New("No healthy servers available")

	// ErrNoCapacity: no available node fits the request (resources, GPU,
	// architecture, labels or max workspaces), whatever the region.
	ErrNoCapacity = errors.New("No server has sufficient resources")

	// ErrNoRegionCapacity: some nodes fit the request, but none in the
	// required region. Place returns it as a *RegionError, which names the
	// region in its text.
	ErrNoRegionCapacity = errors.New("No capacity available in the required region")
)

// RegionError is the failure when nodes fit the request but none of them is in
// the required region. errors.Is(err, ErrNoRegionCapacity) reports true for it.
type RegionError struct {
	Region string
}

func (e *RegionError) Error() string {
	return fmt.Sprintf("No capacity available in %s region", e.Region)
}

// Is makes a *RegionError match ErrNoRegionCapacity.
func (e *RegionError) Is(target error) bool {
	return target == ErrNoRegionCapacity
}
