// Package cgroup reads the out-of-memory evidence of the container's memory cgroup, so a task
// killed by the OOM killer is reported as such rather than as a bare SIGKILL (exit 137).
//
// cgroup v2 counts kills in memory.events (oom_kill) and limit hits (max); cgroup v1 counts
// kills in memory.oom_control (oom_kill, kernel 4.13+) and limit hits in memory.failcnt.
package cgroup

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Version says which cgroup files the numbers came from.
type Version int

const (
	None Version = iota
	V1
	V2
)

// Evidence is one reading of the counters.
type Evidence struct {
	Version   Version
	OOMKill   uint64
	LimitHits uint64
}

// Read reads the counters of the memory cgroup of the process described by procCgroup
// (normally /proc/self/cgroup) under root (normally /sys/fs/cgroup). With a cgroup namespace,
// as in a container, the own path is "/" and the files are at the root.
func Read(root, procCgroup string) Evidence {
	v2path, v1path := ownPaths(procCgroup)
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		for _, dir := range candidates(root, v2path) {
			if fields, ok := keyed(filepath.Join(dir, "memory.events")); ok {
				return Evidence{Version: V2, OOMKill: fields["oom_kill"], LimitHits: fields["max"]}
			}
		}
		return Evidence{}
	}
	for _, dir := range candidates(filepath.Join(root, "memory"), v1path) {
		if fields, ok := keyed(filepath.Join(dir, "memory.oom_control")); ok {
			ev := Evidence{Version: V1, OOMKill: fields["oom_kill"]}
			if raw, err := os.ReadFile(filepath.Join(dir, "memory.failcnt")); err == nil {
				ev.LimitHits, _ = strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
			}
			return ev
		}
	}
	return Evidence{}
}

// ownPaths returns this process's cgroup path in the v2 hierarchy and in the v1 memory one.
func ownPaths(procCgroup string) (v2, v1 string) {
	raw, err := os.ReadFile(procCgroup)
	if err != nil {
		return "/", "/"
	}
	v2, v1 = "/", "/"
	for _, line := range strings.Split(string(raw), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			if ctrl == "memory" {
				v1 = parts[2]
			}
		}
	}
	return v2, v1
}

// candidates is the own cgroup directory, then the mount root (what a namespaced container sees).
func candidates(mount, own string) []string {
	dirs := []string{filepath.Join(mount, own)}
	if own != "/" {
		dirs = append(dirs, mount)
	}
	return dirs
}

// keyed parses "name value" lines.
func keyed(path string) (map[string]uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fields := map[string]uint64{}
	scan := bufio.NewScanner(f)
	for scan.Scan() {
		name, value, ok := strings.Cut(scan.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64); err == nil {
			fields[name] = n
		}
	}
	return fields, true
}
