package docker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// killTree kills pid and all its descendants with SIGKILL. It first stops
// every process it finds (SIGSTOP) so none of them can fork while the tree is
// walked, repeating the walk until it finds nothing new, and only then kills
// them all: killing the root first would reparent its children to the
// container's init and lose them. belongs filters processes: one it answers
// false for is neither signalled nor descended into.
//
// pid must be in the caller's PID namespace (the daemon's: the agent runs
// beside its dockerd). It returns the number of processes signalled.
func killTree(pid int, belongs func(pid int) bool) (int, error) {
	stopped := map[int]bool{}
	for round := 0; round < 10; round++ {
		found := false
		queue := []int{pid}
		seen := map[int]bool{}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if seen[p] {
				continue
			}
			seen[p] = true
			if !belongs(p) {
				continue
			}
			if !stopped[p] {
				if err := syscall.Kill(p, syscall.SIGSTOP); err != nil {
					continue // gone already
				}
				stopped[p] = true
				found = true
			}
			kids, err := childrenOf(p)
			if err != nil {
				return 0, err
			}
			queue = append(queue, kids...)
		}
		if !found {
			break
		}
	}
	var errs []error
	killed := 0
	for p := range stopped {
		err := syscall.Kill(p, syscall.SIGKILL)
		switch {
		case err == nil:
			killed++
		case errors.Is(err, syscall.ESRCH):
		default:
			errs = append(errs, fmt.Errorf("kill %d: %w", p, err))
		}
	}
	return killed, errors.Join(errs...)
}

// childrenOf lists pid's children from /proc/<pid>/task/*/children, or by
// scanning every /proc/<n>/stat for its parent on kernels without that file.
// A process that is gone has no children.
func childrenOf(pid int) ([]int, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return nil, nil //nolint:nilerr // a process that is gone has no children
		}
		return childrenByParent(pid)
	}
	var kids []int
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, field := range strings.Fields(string(raw)) {
			if n, err := strconv.Atoi(field); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids, nil
}

func childrenByParent(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(n); ok && ppid == pid {
			kids = append(kids, n)
		}
	}
	return kids, nil
}

// parentOf reads the parent PID from /proc/<pid>/stat ("pid (comm) state
// ppid ..."; comm may hold spaces and parentheses, so parse after the last
// ')').
func parentOf(pid int) (int, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// inCgroupOf returns a filter accepting the processes whose cgroup path
// names the container's full ID: /docker/<id> with the cgroupfs driver,
// docker-<id>.scope with systemd, on cgroup v1 and v2 alike. It keeps the
// agent from signalling anything outside the container, e.g. if a PID was
// reused or the agent is not in the daemon's PID namespace.
func inCgroupOf(containerID string) func(pid int) bool {
	return func(pid int) bool {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		return err == nil && containerID != "" && bytes.Contains(raw, []byte(containerID))
	}
}
