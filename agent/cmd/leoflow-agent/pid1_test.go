package main

import (
	"os"
	"os/exec"
	"testing"
)

// asPID1 runs the agent as PID 1 of a fresh PID namespace, as in a container.
func asPID1(t *testing.T, script string) (int, string) {
	t.Helper()
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("cannot create a PID namespace here (needs root and util-linux unshare): %v", err)
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0], "run", "--", "sh", "-c", script)
	cmd.Env = append(os.Environ(), asAgent+"=1", "LEOFLOW_TERMINATION_LOG="+t.TempDir()+"/termination-log")
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestAsPID1OrphansAreReaped(t *testing.T) {
	dir := t.TempDir()
	// Exit 2: the orphan was not re-parented to PID 1; exit 1: it stayed a zombie.
	script := `(sh -c 'echo $$ > ` + dir + `/orphan; while [ ! -e ` + dir + `/release ]; do sleep 0.02; done' &)
while [ ! -s ` + dir + `/orphan ]; do sleep 0.02; done
pid=$(cat ` + dir + `/orphan)
for i in $(seq 500); do
  set -- $(sed 's/.*) //' /proc/$pid/stat); [ "$2" = 1 ] && break; sleep 0.02
done
[ "$2" = 1 ] || exit 2
touch ` + dir + `/release
for i in $(seq 500); do [ -e /proc/$pid ] || exit 0; sleep 0.02; done
exit 1`
	if code, out := asPID1(t, script); code != 0 {
		t.Fatalf("exit %d (2: not re-parented to PID 1, 1: left a zombie)\n%s", code, out)
	}
}

func TestAsPID1SigtermIsCaughtAndForwarded(t *testing.T) {
	// PID 1 gets no signal it has no handler for: without the agent's handler, kill -TERM 1
	// would be dropped and the loop would run out (exit 3).
	script := `trap 'exit 0' TERM
kill -TERM 1
for i in $(seq 500); do sleep 0.02; done
exit 3`
	if code, out := asPID1(t, script); code != 0 {
		t.Fatalf("exit %d, want 0 (the command trapped the forwarded SIGTERM)\n%s", code, out)
	}
}
