package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	agentv1 "leoflow.dev/agent/gen/leoflow/agent/v1"
	"leoflow.dev/agent/internal/report"
)

// The test binary doubles as the agent: re-executed with this variable set, it runs agentMain.
const asAgent = "LEOFLOW_AGENT_TEST_AS_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(asAgent) == "1" {
		os.Exit(agentMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// agent prepares the agent with args; the termination message goes to a temp file.
func agent(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, string) {
	t.Helper()
	term := filepath.Join(t.TempDir(), "termination-log")
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asAgent+"=1", "LEOFLOW_TERMINATION_LOG="+term)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr, term
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestChildExitCodePassesThrough(t *testing.T) {
	cmd, _, term := agent(t, "run", "--", "sh", "-c", "exit 42")
	if got := exitCode(t, cmd); got != 42 {
		t.Fatalf("exit code %d, want 42", got)
	}
	var summary map[string]any
	raw, _ := os.ReadFile(term)
	if err := json.Unmarshal(raw, &summary); err != nil || summary["exitCode"] != float64(42) {
		t.Fatalf("termination message %s: %v", raw, err)
	}
}

func TestChildKilledBySignalExits128PlusN(t *testing.T) {
	cmd, _, _ := agent(t, "run", "--", "sh", "-c", "kill -KILL $$")
	if got := exitCode(t, cmd); got != 128+9 {
		t.Fatalf("exit code %d, want 137", got)
	}
}

func TestCommandNotFoundExits127(t *testing.T) {
	cmd, stderr, _ := agent(t, "run", "--", "leoflow-no-such-command")
	if got := exitCode(t, cmd); got != 127 {
		t.Fatalf("exit code %d, want 127", got)
	}
	if !strings.Contains(stderr.String(), "leoflow-no-such-command") {
		t.Fatalf("stderr does not name the command: %q", stderr)
	}
}

func TestCommandNotExecutableExits126(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, _, _ := agent(t, "run", "--", script)
	if got := exitCode(t, cmd); got != 126 {
		t.Fatalf("exit code %d, want 126", got)
	}
}

func TestAgentOwnFailureExits125(t *testing.T) {
	for _, args := range [][]string{{"run"}, {"run", "--no-such-flag", "--", "true"}, {"frobnicate"}} {
		cmd, _, _ := agent(t, args...)
		if got := exitCode(t, cmd); got != 125 {
			t.Errorf("%v: exit code %d, want 125", args, got)
		}
	}
	cmd, _, _ := agent(t, "run", "--", "true")
	cmd.Env = append(cmd.Env, "LEOFLOW_HEARTBEAT_INTERVAL=soon")
	if got := exitCode(t, cmd); got != 125 {
		t.Errorf("bad env duration: exit code %d, want 125", got)
	}
}

// waitFor polls for a condition the test cannot be notified of, failing after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func TestSignalsAreForwardedToTheWholeProcessGroup(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			name := strconv.Itoa(int(sig))
			// A background grandchild in the same group must see the signal too.
			script := `trap 'echo child > ` + dir + `/child; exit 0' ` + name + `
(trap 'echo grandchild > ` + dir + `/grandchild; exit 0' ` + name + `; touch ` + dir + `/ready2; while :; do sleep 0.05; done) &
touch ` + dir + `/ready1
wait`
			cmd, stderr, _ := agent(t, "run", "--", "sh", "-c", script)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the command to be ready", func() bool { return exists(dir+"/ready1") && exists(dir+"/ready2") })
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the grandchild to get the signal", func() bool { return exists(dir + "/grandchild") })
			err := cmd.Wait()
			if err != nil {
				t.Fatalf("agent: %v\n%s", err, stderr)
			}
			if !exists(dir + "/child") {
				t.Fatal("the command itself never got the signal")
			}
		})
	}
}

func TestUntrappedSigtermExits143(t *testing.T) {
	dir := t.TempDir()
	cmd, _, _ := agent(t, "run", "--", "sh", "-c", "touch "+dir+"/ready; exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the command to start", func() bool { return exists(dir + "/ready") })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 143 {
		t.Fatalf("exit %v, want 143", err)
	}
}

func TestOrphanedGrandchildrenAreReaped(t *testing.T) {
	dir := t.TempDir()
	// The subshell exits at once, so its background child is orphaned and re-parented to the
	// agent (a child subreaper); it exits when released, while the command is still running.
	script := `(sh -c 'echo $$ > ` + dir + `/orphan.tmp; mv ` + dir + `/orphan.tmp ` + dir + `/orphan
while [ ! -e ` + dir + `/release ]; do sleep 0.02; done' &)
while [ ! -e ` + dir + `/done ]; do sleep 0.02; done`
	cmd, stderr, _ := agent(t, "run", "--", "sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphan to write its pid", func() bool { return exists(dir + "/orphan") })
	raw, _ := os.ReadFile(dir + "/orphan")
	pid := strings.TrimSpace(string(raw))
	waitFor(t, "the orphan "+pid+" to be re-parented to the agent", func() bool {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		return err == nil && len(fields) > 1 && fields[1] == strconv.Itoa(cmd.Process.Pid)
	})
	_ = os.WriteFile(dir+"/release", nil, 0o644)
	waitFor(t, "the orphan "+pid+" to be reaped (no zombie left in /proc)", func() bool {
		_, err := os.Stat("/proc/" + pid)
		return os.IsNotExist(err)
	})
	_ = os.WriteFile(dir+"/done", nil, 0o644)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent: %v\n%s", err, stderr)
	}
}

func TestInstallAndVersion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	cmd, stderr, _ := agent(t, "install", dir)
	if got := exitCode(t, cmd); got != 0 {
		t.Fatalf("install exit %d: %s", got, stderr)
	}
	installed, err := os.ReadFile(filepath.Join(dir, "leoflow-agent"))
	self, _ := os.ReadFile(os.Args[0])
	if err != nil || !bytes.Equal(installed, self) {
		t.Fatalf("the installed copy differs from the running binary: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, "leoflow-agent"))
	if err != nil || info.Mode().Perm() != 0o555 {
		t.Fatalf("installed agent: %v %v", info, err)
	}
	cmd, _, _ = agent(t, "version")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if got := exitCode(t, cmd); got != 0 || strings.TrimSpace(stdout.String()) != version {
		t.Fatalf("version exit %d output %q", got, stdout.String())
	}
}

// controller is an in-process AgentService recording what it receives.
type controller struct {
	agentv1.UnimplementedAgentServiceServer
	mu       sync.Mutex
	events   []string
	finished []*agentv1.FinishedRequest
	started  []*agentv1.TaskIdentity
	// failFinished makes the first n Finished calls fail with code.
	failFinished int
	failCode     codes.Code
	waitStarted  chan struct{}
	decision     chan agentv1.WaitStartResponse_Decision
	// firstConnectionIsStandby refuses every report on the first connection with the reconnect
	// trailer, as a standby replica does; standby is that connection's client address.
	firstConnectionIsStandby bool
	standby                  string
}

// onStandby is the refusal of a standby replica, for calls on the connection that reached one.
func (c *controller) onStandby(ctx context.Context) error {
	if !c.firstConnectionIsStandby {
		return nil
	}
	from, _ := peer.FromContext(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.standby == "" {
		c.standby = from.Addr.String()
	}
	if from.Addr.String() != c.standby {
		return nil
	}
	c.events = append(c.events, "refused by the standby")
	_ = grpc.SetTrailer(ctx, metadata.Pairs(report.ReconnectTrailer, "not-leader"))
	return status.Error(codes.Unavailable, "this controller replica is not the leader")
}

func (c *controller) record(event string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, event)
}

func (c *controller) Events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.events...)
}

func (c *controller) WaitStart(ctx context.Context, _ *agentv1.WaitStartRequest) (*agentv1.WaitStartResponse, error) {
	c.record("WaitStart")
	close(c.waitStarted)
	select {
	case d := <-c.decision:
		return &agentv1.WaitStartResponse{Decision: d, Message: "test decision"}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *controller) Started(ctx context.Context, r *agentv1.StartedRequest) (*agentv1.StartedResponse, error) {
	if err := c.onStandby(ctx); err != nil {
		return nil, err
	}
	c.record("Started " + r.GetIdentity().GetPodName() + " " + strings.Join(r.GetCommand(), " "))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = append(c.started, r.GetIdentity())
	return &agentv1.StartedResponse{}, nil
}

func (c *controller) Heartbeat(context.Context, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
	return &agentv1.HeartbeatResponse{}, nil
}

func (c *controller) Terminating(_ context.Context, r *agentv1.TerminatingRequest) (*agentv1.TerminatingResponse, error) {
	c.record("Terminating " + strconv.Itoa(int(r.GetSignal())))
	return &agentv1.TerminatingResponse{}, nil
}

func (c *controller) Finished(ctx context.Context, r *agentv1.FinishedRequest) (*agentv1.FinishedResponse, error) {
	if err := c.onStandby(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, "Finished "+strconv.Itoa(int(r.GetExitCode())))
	if c.failFinished > 0 {
		c.failFinished--
		return nil, status.Error(c.failCode, "test failure")
	}
	c.finished = append(c.finished, r)
	return &agentv1.FinishedResponse{}, nil
}

func serve(t *testing.T, c *controller) string {
	t.Helper()
	c.waitStarted = make(chan struct{})
	if c.decision == nil {
		c.decision = make(chan agentv1.WaitStartResponse_Decision, 1)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	agentv1.RegisterAgentServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func reportingAgent(t *testing.T, addr string, extra ...string) (*exec.Cmd, *bytes.Buffer, string) {
	args := append([]string{"run", "--insecure", "--controller-addr", addr, "--pod-name", "p1",
		"--rpc-timeout", "500ms", "--finish-timeout", "3s"}, extra...)
	return agent(t, args...)
}

func TestFinishedIsRetriedUntilAcknowledged(t *testing.T) {
	c := &controller{failFinished: 2, failCode: codes.Unavailable}
	addr := serve(t, c)
	cmd, stderr, _ := reportingAgent(t, addr, "--", "sh", "-c", "exit 3")
	if got := exitCode(t, cmd); got != 3 {
		t.Fatalf("exit %d: %s", got, stderr)
	}
	want := []string{"Started p1 sh -c exit 3", "Finished 3", "Finished 3", "Finished 3"}
	if got := c.Events(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
	if len(c.finished) != 1 || c.finished[0].GetOom().GetSource() == agentv1.OomEvidence_SOURCE_UNSPECIFIED {
		t.Fatalf("finished reports: %v", c.finished)
	}
}

func TestFinishedGivesUpWithinTheFinishTimeout(t *testing.T) {
	c := &controller{failFinished: 1 << 30, failCode: codes.Unavailable}
	addr := serve(t, c)
	cmd, stderr, _ := reportingAgent(t, addr, "--finish-timeout", "1s", "--", "sh", "-c", "exit 5")
	if got := exitCode(t, cmd); got != 5 {
		t.Fatalf("exit %d: %s", got, stderr)
	}
	if n := strings.Count(strings.Join(c.Events(), "|"), "Finished"); n < 2 {
		t.Fatalf("Finished tried %d times, want retries", n)
	}
	if !strings.Contains(stderr.String(), "giving up") {
		t.Fatalf("no give-up message: %s", stderr)
	}
}

func TestAStandbysRefusalMakesTheAgentDialAgainAndReachTheLeader(t *testing.T) {
	c := &controller{firstConnectionIsStandby: true}
	addr := serve(t, c)
	cmd, stderr, _ := reportingAgent(t, addr, "--", "sh", "-c", "exit 4")
	if got := exitCode(t, cmd); got != 4 {
		t.Fatalf("exit %d: %s", got, stderr)
	}
	want := []string{"refused by the standby", "Started p1 sh -c exit 4", "Finished 4"}
	if got := c.Events(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
	if !strings.Contains(stderr.String(), "dialling again") {
		t.Fatalf("no reconnect message: %s", stderr)
	}
}

func TestRefusedFinishedIsNotRetried(t *testing.T) {
	c := &controller{failFinished: 1 << 30, failCode: codes.PermissionDenied}
	addr := serve(t, c)
	cmd, stderr, _ := reportingAgent(t, addr, "--", "true")
	if got := exitCode(t, cmd); got != 0 {
		t.Fatalf("exit %d: %s", got, stderr)
	}
	if n := strings.Count(strings.Join(c.Events(), "|"), "Finished"); n != 1 {
		t.Fatalf("Finished tried %d times, want 1", n)
	}
}

func TestControllerDownStillRunsTheCommand(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close()
	dir := t.TempDir()
	cmd, _, term := reportingAgent(t, addr, "--finish-timeout", "1s", "--", "sh", "-c", "touch "+dir+"/ran; exit 7")
	if got := exitCode(t, cmd); got != 7 {
		t.Fatalf("exit %d, want 7", got)
	}
	if !exists(dir + "/ran") {
		t.Fatal("the command did not run")
	}
	if raw, _ := os.ReadFile(term); !bytes.Contains(raw, []byte(`"exitCode":7`)) {
		t.Fatalf("termination message %s", raw)
	}
}

func TestSigtermIsReportedAsTerminating(t *testing.T) {
	c := &controller{}
	addr := serve(t, c)
	dir := t.TempDir()
	cmd, stderr, term := reportingAgent(t, addr, "--", "sh", "-c", "trap 'exit 0' TERM; touch "+dir+"/ready; while :; do sleep 0.05; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the command to start", func() bool { return exists(dir + "/ready") })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent: %v\n%s", err, stderr)
	}
	got := strings.Join(c.Events(), "|")
	if !strings.Contains(got, "Terminating 15|Finished 0") {
		t.Fatalf("events %q", got)
	}
	// The controller judges a Finished after Terminating an interruption; the termination message
	// says so too, for when it learns the outcome from the pod alone.
	raw, err := os.ReadFile(term)
	if err != nil || !strings.Contains(string(raw), `"interruptedBy":15`) {
		t.Fatalf("termination message %s: %v", raw, err)
	}
}

func TestWaitStartHoldsTheCommandUntilTheControllerSaysGo(t *testing.T) {
	c := &controller{}
	addr := serve(t, c)
	dir := t.TempDir()
	cmd, stderr, _ := reportingAgent(t, addr, "--wait-start", "--", "touch", dir+"/ran")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-c.waitStarted
	if exists(dir + "/ran") {
		t.Fatal("the command ran before the controller said go")
	}
	c.decision <- agentv1.WaitStartResponse_DECISION_START
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent: %v\n%s", err, stderr)
	}
	if !exists(dir + "/ran") {
		t.Fatal("the command did not run after go")
	}
	if got := c.Events(); len(got) < 2 || got[0] != "WaitStart" || !strings.HasPrefix(got[1], "Started") {
		t.Fatalf("events %q", got)
	}
}

func TestWaitStartCancelledNeverRunsTheCommand(t *testing.T) {
	c := &controller{}
	addr := serve(t, c)
	dir := t.TempDir()
	c.decision = make(chan agentv1.WaitStartResponse_Decision, 1)
	c.decision <- agentv1.WaitStartResponse_DECISION_CANCEL
	cmd, _, _ := reportingAgent(t, addr, "--wait-start", "--", "touch", dir+"/ran")
	if got := exitCode(t, cmd); got != 125 {
		t.Fatalf("exit %d, want 125", got)
	}
	if exists(dir + "/ran") {
		t.Fatal("the command ran although the controller cancelled")
	}
}

func TestWaitStartWithoutControllerIsAnAgentFailure(t *testing.T) {
	cmd, stderr, _ := agent(t, "run", "--wait-start", "--", "true")
	if got := exitCode(t, cmd); got != 125 || !strings.Contains(stderr.String(), "--wait-start needs") {
		t.Fatalf("exit %d: %s", got, stderr)
	}
}

func TestOutputsOverTheCapAreRefusedInFinished(t *testing.T) {
	c := &controller{}
	addr := serve(t, c)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok"), []byte("fine"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, stderr, _ := reportingAgent(t, addr, "--outputs-dir", dir, "--",
		"sh", "-c", "head -c 70000 /dev/zero > "+dir+"/huge")
	if got := exitCode(t, cmd); got != 0 {
		t.Fatalf("exit %d: %s", got, stderr)
	}
	if len(c.finished) != 1 {
		t.Fatalf("finished: %v", c.finished)
	}
	f := c.finished[0]
	if len(f.GetOutputs()) != 0 || !strings.Contains(f.GetOutputsError(), filepath.Join(dir, "huge")) ||
		!strings.Contains(f.GetOutputsError(), "70000 bytes") {
		t.Fatalf("outputs %v error %q", f.GetOutputs(), f.GetOutputsError())
	}
	if !strings.Contains(stderr.String(), "outputs refused") {
		t.Fatalf("no message on stderr: %s", stderr)
	}
}

func TestSignalWhileWaitingForStartExitsWithoutRunningTheCommand(t *testing.T) {
	c := &controller{}
	addr := serve(t, c)
	dir := t.TempDir()
	cmd, _, _ := reportingAgent(t, addr, "--wait-start", "--", "touch", dir+"/ran")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-c.waitStarted
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 143 {
		t.Fatalf("exit %v, want 143", err)
	}
	if exists(dir + "/ran") {
		t.Fatal("the command ran although the pod was being terminated")
	}
}

func TestUnreadableCABundleDisablesReportsButRunsTheCommand(t *testing.T) {
	dir := t.TempDir()
	cmd, stderr, _ := agent(t, "run", "--controller-addr", "127.0.0.1:1", "--ca-file", dir+"/missing.crt",
		"--", "sh", "-c", "touch "+dir+"/ran; exit 8")
	if got := exitCode(t, cmd); got != 8 {
		t.Fatalf("exit %d, want 8", got)
	}
	if !exists(dir+"/ran") || !strings.Contains(stderr.String(), "reports disabled: CA bundle") {
		t.Fatalf("stderr: %s", stderr)
	}
}

// podLayout writes the identity directory as the kubelet projects it in an injected pod.
func podLayout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"pod-name":      "etl-extract-1",
		"pod-namespace": "team-a",
		"pod-uid":       "0b6f4a9e-uid",
		"labels":        "leoflow.io/attempt=\"4\"\nleoflow.io/dag=\"etl\"\nleoflow.io/inject=\"true\"\nleoflow.io/task=\"extract\"",
		"token":         "projected-token\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestIdentityComesFromThePodFilesWhereNoFlagOrVariableSetsIt(t *testing.T) {
	c := &controller{}
	addr := serve(t, c)
	dir := podLayout(t)
	cmd, stderr, _ := agent(t, "run", "--insecure", "--controller-addr", addr, "--run", "from-flag", "--",
		"sh", "-c", `echo "$LEOFLOW_POD_NAME|$LEOFLOW_ATTEMPT|$LEOFLOW_TASK|$LEOFLOW_RUN|$LEOFLOW_DAG|$LEOFLOW_TOKEN_FILE|$LEOFLOW_CA_FILE"`)
	// LEOFLOW_TASK set, and LEOFLOW_DAG set empty as the downward API sets a missing label.
	cmd.Env = append(cmd.Env, "LEOFLOW_IDENTITY_DIR="+dir, "LEOFLOW_TASK=from-env", "LEOFLOW_DAG=")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if got := exitCode(t, cmd); got != 0 {
		t.Fatalf("exit %d: %s", got, stderr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.started) != 1 {
		t.Fatalf("Started reports: %v (stderr %s)", c.started, stderr)
	}
	id := c.started[0]
	got := []any{id.GetPodName(), id.GetPodNamespace(), id.GetPodUid(), id.GetDag(), id.GetRun(), id.GetTask(), id.GetAttempt()}
	want := []any{"etl-extract-1", "team-a", "0b6f4a9e-uid", "etl", "from-flag", "from-env", int32(4)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("identity %v, want %v (flag, then variable, then file)", got, want)
	}
	// The command sees the filled-in values as the webhook's variables used to show them; the
	// flag's value is not exported (it never was), and there is no CA file to name.
	if line := strings.TrimSpace(stdout.String()); line != "etl-extract-1|4|from-env||etl|"+filepath.Join(dir, "token")+"|" {
		t.Fatalf("the command's environment: %q", line)
	}
}

func TestAMalformedLabelsFileIsNamedAndTheCommandStillRuns(t *testing.T) {
	dir := podLayout(t)
	if err := os.WriteFile(filepath.Join(dir, "labels"), []byte("leoflow.io/dag=etl"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, stderr, _ := agent(t, "run", "--", "sh", "-c", "exit 5")
	cmd.Env = append(cmd.Env, "LEOFLOW_IDENTITY_DIR="+dir)
	if got := exitCode(t, cmd); got != 5 {
		t.Fatalf("exit %d, want 5: %s", got, stderr)
	}
	if !strings.Contains(stderr.String(), filepath.Join(dir, "labels")) {
		t.Fatalf("the warning does not name the labels file: %s", stderr)
	}
}
