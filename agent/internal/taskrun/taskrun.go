// Package taskrun is `leoflow-agent run`: it ties the supervised command to the controller
// reports, the outputs, the OOM evidence and the termination message.
//
// The order of events is fixed: (WaitStart), Started, Heartbeat..., Terminating on SIGTERM,
// Finished. Reports run beside the command and never hold it back; the only wait the agent adds
// after the command has exited is the Finished acknowledgement, bounded by FinishTimeout.
package taskrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	agentv1 "leoflow.dev/agent/gen/leoflow/agent/v1"
	"leoflow.dev/agent/internal/cgroup"
	"leoflow.dev/agent/internal/outputs"
	"leoflow.dev/agent/internal/report"
	"leoflow.dev/agent/internal/supervise"
	"leoflow.dev/agent/internal/termination"
)

// Options configure one run.
type Options struct {
	Command []string
	Env     []string
	// Reporter is nil when no controller address was given: the command runs unreported.
	Reporter          *report.Client
	WaitStart         bool
	WaitStartTimeout  time.Duration // 0: wait as long as it takes
	HeartbeatInterval time.Duration // 0: no heartbeats
	// ReportGiveUp bounds the retries of Started and Terminating.
	ReportGiveUp time.Duration
	// FinishTimeout bounds how long the agent waits, after the command exited, for reports.
	FinishTimeout     time.Duration
	OutputsDir        string
	OutputsMaxBytes   int
	TerminationLog    string
	CreateTermination bool
	CgroupRoot        string
	ProcCgroup        string
	AgentVersion      string
	Warn              func(format string, args ...any)
}

// Run runs the command and returns the exit code the agent must exit with.
func Run(o Options) int {
	sigs := supervise.Signals()
	if err := supervise.BecomeSubreaper(); err != nil {
		o.Warn("cannot become a child subreaper (orphans of the command may stay zombies): %v", err)
	}
	before := cgroup.Read(o.CgroupRoot, o.ProcCgroup)

	if o.WaitStart {
		if code, ok := waitStart(o, sigs); !ok {
			return code
		}
	}

	// Reports sent while the command runs stay alive until the Finished deadline at most.
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	var reports sync.WaitGroup
	start := time.Now()
	if o.Reporter != nil {
		reports.Add(1)
		go func() {
			defer reports.Done()
			ctx, cancel := context.WithTimeout(runCtx, o.ReportGiveUp)
			defer cancel()
			_ = o.Reporter.Started(ctx, o.Command, start)
		}()
	}
	stopHeartbeats := heartbeats(o, start)
	var interrupted atomic.Int32
	onSignal := func(sig syscall.Signal) {
		if sig != syscall.SIGTERM {
			return
		}
		interrupted.CompareAndSwap(0, int32(sig))
		if o.Reporter == nil {
			return
		}
		reports.Add(1)
		go func() {
			defer reports.Done()
			ctx, cancel := context.WithTimeout(runCtx, o.ReportGiveUp)
			defer cancel()
			_ = o.Reporter.Terminating(ctx, int(sig))
		}()
	}

	res := supervise.Run(o.Command, o.Env, sigs, onSignal)
	end := time.Now()
	stopHeartbeats()
	supervise.ReapOrphans()
	deadline := end.Add(o.FinishTimeout)
	// Reports still retrying get half the budget, so Finished always gets a fair try.
	time.AfterFunc(o.FinishTimeout/2, cancelRun)

	after := cgroup.Read(o.CgroupRoot, o.ProcCgroup)
	outs, outErr := outputs.Collect(o.OutputsDir, o.OutputsMaxBytes)
	finished := &agentv1.FinishedRequest{
		ExitCode:      int32(res.ExitCode),
		Signal:        int32(res.Signal),
		DurationMs:    res.Duration.Milliseconds(),
		PeakRssBytes:  res.PeakRSSBytes,
		Oom:           oomEvidence(before, after),
		Outputs:       outs,
		EndTimeUnixMs: end.UnixMilli(),
	}
	if res.Err != nil {
		finished.AgentError = res.Err.Error()
		o.Warn("%v", res.Err)
	}
	if outErr != nil {
		finished.OutputsError = outErr.Error()
		o.Warn("outputs refused: %v", outErr)
	}
	writeTermination(o, finished, outs, int(interrupted.Load()))

	if o.Reporter != nil {
		// Started (and Terminating) go first, so the controller sees the events in order.
		reports.Wait()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		_ = o.Reporter.Finished(ctx, finished)
		cancel()
	}
	return res.ExitCode
}

// waitStart holds the command until the controller says go. It returns ok=false with the exit
// code when the command must not run.
func waitStart(o Options, sigs <-chan os.Signal) (int, bool) {
	if o.Reporter == nil {
		o.Warn("--wait-start needs a controller address (--controller-addr or LEOFLOW_CONTROLLER_ADDR)")
		return supervise.ExitAgentFailure, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if o.WaitStartTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, o.WaitStartTimeout)
		defer cancel()
	}
	type answer struct {
		resp *agentv1.WaitStartResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := o.Reporter.WaitStart(ctx)
		done <- answer{resp, err}
	}()
	for {
		select {
		case sig := <-sigs:
			s, ok := sig.(syscall.Signal)
			if !ok || s == syscall.SIGCHLD {
				continue
			}
			o.Warn("received %v while waiting for the controller's go; the command was not run", s)
			cancel()
			return 128 + int(s), false
		case a := <-done:
			switch {
			case a.err != nil && errors.Is(a.err, context.DeadlineExceeded):
				o.Warn("no go from the controller within --wait-start-timeout %v; the command was not run", o.WaitStartTimeout)
				return supervise.ExitAgentFailure, false
			case a.err != nil:
				o.Warn("waiting for the controller's go failed; the command was not run: %v", a.err)
				return supervise.ExitAgentFailure, false
			case a.resp.GetDecision() == agentv1.WaitStartResponse_DECISION_START:
				return 0, true
			default:
				o.Warn("the controller cancelled this attempt before it started: %s", a.resp.GetMessage())
				return supervise.ExitAgentFailure, false
			}
		}
	}
}

// heartbeats sends one heartbeat per interval, skipping a tick while the previous one is still
// in flight; the returned function stops them.
func heartbeats(o Options, start time.Time) func() {
	if o.Reporter == nil || o.HeartbeatInterval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(o.HeartbeatInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = o.Reporter.Heartbeat(ctx, time.Since(start))
			}
		}
	}()
	return func() { cancel(); <-done }
}

func oomEvidence(before, after cgroup.Evidence) *agentv1.OomEvidence {
	source := agentv1.OomEvidence_SOURCE_NONE
	switch after.Version {
	case cgroup.V1:
		source = agentv1.OomEvidence_SOURCE_CGROUP_V1
	case cgroup.V2:
		source = agentv1.OomEvidence_SOURCE_CGROUP_V2
	}
	return &agentv1.OomEvidence{
		Source:        source,
		OomKillBefore: before.OOMKill,
		OomKillAfter:  after.OOMKill,
		OomKilled:     after.OOMKill > before.OOMKill,
		LimitHits:     after.LimitHits,
	}
}

func writeTermination(o Options, f *agentv1.FinishedRequest, outs map[string][]byte, interruptedBy int) {
	if o.TerminationLog == "" {
		return
	}
	msg := termination.Encode(termination.Summary{
		ExitCode:      int(f.ExitCode),
		Signal:        int(f.Signal),
		InterruptedBy: interruptedBy,
		DurationMs:    f.DurationMs,
		PeakRSSBytes:  f.PeakRssBytes,
		OOMKilled:     f.GetOom().GetOomKilled(),
		AgentError:    f.AgentError,
		OutputsError:  f.OutputsError,
		AgentVersion:  o.AgentVersion,
	}, outs)
	err := termination.Write(o.TerminationLog, o.CreateTermination, msg)
	if err != nil && (o.CreateTermination || !errors.Is(err, os.ErrNotExist)) {
		o.Warn("termination message: %v", fmt.Errorf("writing %s: %w", o.TerminationLog, err))
	}
}
