// Package capacity measures what an agent's host has and what berth has
// reserved on it, as a wire.Capacity: logical CPUs, whole-host CPU use,
// load, memory, the disk holding Docker's data root, the architecture (from
// gopsutil, the only package of berth that imports it), and from Docker the
// container and image counts and the limits of berth's containers.
//
// The agent samples every few seconds (Sampler.Run), gossips the result as
// its node metadata and serves it on /v1/capacity; the scheduler places
// workspaces on it.
package capacity
