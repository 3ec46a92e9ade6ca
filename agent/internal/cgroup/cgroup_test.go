package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

func put(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupV2OOMKillsAreReadFromMemoryEvents(t *testing.T) {
	root := t.TempDir()
	put(t, filepath.Join(root, "cgroup.controllers"), "cpu memory\n")
	put(t, filepath.Join(root, "memory.events"), "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n")
	proc := filepath.Join(root, "proc-cgroup")
	put(t, proc, "0::/\n")
	got := Read(root, proc)
	if got != (Evidence{Version: V2, OOMKill: 2, LimitHits: 7}) {
		t.Fatalf("got %+v", got)
	}
}

func TestCgroupV2FollowsTheOwnCgroupPath(t *testing.T) {
	root := t.TempDir()
	put(t, filepath.Join(root, "cgroup.controllers"), "memory\n")
	put(t, filepath.Join(root, "kubepods/pod1/memory.events"), "max 0\noom_kill 1\n")
	proc := filepath.Join(root, "proc-cgroup")
	put(t, proc, "0::/kubepods/pod1\n")
	if got := Read(root, proc); got.OOMKill != 1 || got.Version != V2 {
		t.Fatalf("got %+v", got)
	}
}

func TestCgroupV1OOMKillsAndFailcnt(t *testing.T) {
	root := t.TempDir()
	put(t, filepath.Join(root, "memory/kubepods/x/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	put(t, filepath.Join(root, "memory/kubepods/x/memory.failcnt"), "12\n")
	proc := filepath.Join(root, "proc-cgroup")
	put(t, proc, "12:cpu,cpuacct:/kubepods/x\n5:memory:/kubepods/x\n0::/\n")
	got := Read(root, proc)
	if got != (Evidence{Version: V1, OOMKill: 3, LimitHits: 12}) {
		t.Fatalf("got %+v", got)
	}
}

func TestNoMemoryCgroupMeansNoEvidence(t *testing.T) {
	if got := Read(t.TempDir(), "/nonexistent"); got != (Evidence{}) {
		t.Fatalf("got %+v", got)
	}
}
