// Package supervise runs the user's command the way PID 1 of a container must: in its own
// process group, with the agent's signals forwarded to that group, orphans reaped, and the exit
// status mapped to a container exit code (the child's code, 128+N when killed by signal N).
//
// The agent reaps with wait4(-1) itself instead of exec.Cmd.Wait: as PID 1 (or a child
// subreaper) it inherits every orphan in the container, and a single reaper is the only way to
// collect them without racing the wait for the command itself.
package supervise

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit codes the agent uses when the command did not run. 126 and 127 follow the shell
// convention; 125 (as for `docker run`) is reserved for the agent's own failure.
const (
	ExitAgentFailure  = 125
	ExitCannotExecute = 126
	ExitNotFound      = 127
)

// Forwarded are the signals the agent passes on to the command's process group.
var Forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
}

// reapPoll bounds how long a lost SIGCHLD (signal channels drop when full) can delay reaping.
const reapPoll = time.Second

// Result is what happened to the command.
type Result struct {
	ExitCode     int
	Signal       syscall.Signal // the signal that killed the command, 0 when it exited
	Start        time.Time
	Duration     time.Duration
	PeakRSSBytes uint64
	// Err is set when the command could not be started; ExitCode is then 126 or 127.
	Err error
}

// Signals starts catching the signals Run needs. Call it before anything that may want to react
// to a signal (such as waiting for the controller's go), and pass the channel to Run, so no
// signal is lost or takes its default action in between.
func Signals() chan os.Signal {
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, append([]os.Signal{syscall.SIGCHLD}, Forwarded...)...)
	return ch
}

// BecomeSubreaper makes orphaned grandchildren re-parent to this process when it is not PID 1,
// so they are reaped here rather than left as zombies. PID 1 needs nothing.
func BecomeSubreaper() error {
	if os.Getpid() == 1 {
		return nil
	}
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Run starts argv in its own process group and waits for it, forwarding the signals that
// arrive on sigs (from Signals) to the group and reaping every child that exits. onSignal, when
// not nil, is called after each forwarded signal; it must not block.
func Run(argv []string, env []string, sigs <-chan os.Signal, onSignal func(syscall.Signal)) Result {
	start := time.Now()
	path, err := resolve(argv[0], env)
	if err != nil {
		return failed(start, err)
	}
	// syscall.ForkExec rather than os.StartProcess: the latter forks an extra probe child to
	// detect pidfd support, a cost every task would pay, for a handle the reaper does not need.
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return failed(start, fmt.Errorf("cannot execute %s: %w", argv[0], err))
	}
	poll := time.NewTicker(reapPoll)
	defer poll.Stop()
	for {
		if res, done := reap(pid); done {
			res.Start = start
			res.Duration = time.Since(start)
			return res
		}
		select {
		case sig := <-sigs:
			s, ok := sig.(syscall.Signal)
			if !ok || s == syscall.SIGCHLD {
				continue
			}
			forward(pid, s)
			if onSignal != nil {
				onSignal(s)
			}
		case <-poll.C:
		}
	}
}

// ReapOrphans collects any exited children without blocking; called before the agent exits.
func ReapOrphans() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// reap collects every exited child and reports whether pid was among them.
func reap(pid int) (Result, bool) {
	var found Result
	done := false
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, &ru)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if got <= 0 || err != nil {
			return found, done
		}
		if got != pid {
			continue
		}
		done = true
		found.PeakRSSBytes = uint64(ru.Maxrss) * 1024 // Linux reports KiB
		switch {
		case ws.Signaled():
			found.Signal = ws.Signal()
			found.ExitCode = 128 + int(ws.Signal())
		default:
			found.ExitCode = ws.ExitStatus()
		}
	}
}

func forward(pid int, sig syscall.Signal) {
	// The command leads its group; when it is gone only stragglers may be left, so signal them.
	if err := syscall.Kill(-pid, sig); errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(pid, sig)
	}
}

func resolve(name string, env []string) (string, error) {
	path, err := lookPath(name, env)
	if err == nil || errors.Is(err, exec.ErrDot) {
		return path, nil
	}
	return "", err
}

// lookPath is exec.LookPath against the command's own PATH rather than the agent's.
func lookPath(name string, env []string) (string, error) {
	for i := len(env) - 1; i >= 0; i-- {
		if len(env[i]) >= 5 && env[i][:5] == "PATH=" {
			old := os.Getenv("PATH")
			_ = os.Setenv("PATH", env[i][5:])
			defer func() { _ = os.Setenv("PATH", old) }()
			break
		}
	}
	return exec.LookPath(name)
}

func failed(start time.Time, err error) Result {
	code := ExitCannotExecute
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		code = ExitNotFound
	case errors.As(err, &pathErr) && errors.Is(pathErr.Err, syscall.ENOENT):
		code = ExitNotFound
	}
	return Result{ExitCode: code, Start: start, Err: err}
}
