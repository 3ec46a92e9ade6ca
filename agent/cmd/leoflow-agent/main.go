// Command leoflow-agent runs in front of the user's command in every Leoflow task pod.
//
//	leoflow-agent install DIR         copy this binary to DIR/leoflow-agent (init container)
//	leoflow-agent run [flags] -- CMD  run CMD as a supervised child and report to the controller
//	leoflow-agent version             print the version
//
// Every run flag can also be set by an environment variable (see docs/agent.md); the flag wins.
// In a pod the webhook injected, the identity and the paths come from files at constant paths
// (package podlayout) whenever neither a flag nor a variable sets them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	agentv1 "leoflow.dev/agent/gen/leoflow/agent/v1"
	"leoflow.dev/agent/internal/install"
	"leoflow.dev/agent/internal/outputs"
	"leoflow.dev/agent/internal/podlayout"
	"leoflow.dev/agent/internal/report"
	"leoflow.dev/agent/internal/supervise"
	"leoflow.dev/agent/internal/taskrun"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const defaultTerminationLog = "/dev/termination-log"

func main() {
	os.Exit(agentMain(os.Args[1:], os.Stdout, os.Stderr))
}

func agentMain(args []string, stdout, stderr io.Writer) int {
	warn := func(format string, a ...any) { fmt.Fprintf(stderr, "leoflow-agent: "+format+"\n", a...) }
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return supervise.ExitAgentFailure
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "install":
		if len(args) != 2 {
			warn("usage: leoflow-agent install DIR")
			return supervise.ExitAgentFailure
		}
		self, err := os.Executable()
		if err == nil {
			_, err = install.Install(self, args[1])
		}
		if err != nil {
			warn("install: %v", err)
			return supervise.ExitAgentFailure
		}
		return 0
	case "run":
		opts, err := parseRun(args[1:], stderr, warn)
		if err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				warn("%v", err)
			}
			return supervise.ExitAgentFailure
		}
		if opts.Reporter != nil {
			defer opts.Reporter.Close()
		}
		return taskrun.Run(opts)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		warn("unknown command %q\n%s", args[0], usage)
		return supervise.ExitAgentFailure
	}
}

const usage = `usage:
  leoflow-agent install DIR          copy this binary to DIR/leoflow-agent (mode 0555)
  leoflow-agent run [flags] -- CMD [ARGS...]
  leoflow-agent version
run 'leoflow-agent run -h' for the flags; exit code 125 means the agent itself failed.
`

// envSource looks up a flag's environment variable; tests replace it.
var envSource = os.LookupEnv

func parseRun(args []string, stderr io.Writer, warn func(string, ...any)) (taskrun.Options, error) {
	fs := flag.NewFlagSet("leoflow-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var bad []string
	str := func(name, env, def, help string) *string {
		if v, ok := envSource(env); ok {
			def = v
		}
		return fs.String(name, def, help+" (env "+env+")")
	}
	dur := func(name, env string, def time.Duration, help string) *time.Duration {
		if v, ok := envSource(env); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s=%q is not a duration such as 10s", env, v))
			}
			def = d
		}
		return fs.Duration(name, def, help+" (env "+env+")")
	}
	boolean := func(name, env string, help string) *bool {
		def := false
		if v, ok := envSource(env); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s=%q is not true or false", env, v))
			}
			def = b
		}
		return fs.Bool(name, def, help+" (env "+env+")")
	}

	addr := str("controller-addr", "LEOFLOW_CONTROLLER_ADDR", "", "host:port of the controller's agent endpoint; empty: no reports")
	caFile := str("ca-file", "LEOFLOW_CA_FILE", "", "PEM CA bundle that signs the controller's certificate; empty: system roots")
	serverName := str("tls-server-name", "LEOFLOW_TLS_SERVER_NAME", "", "name to verify in the controller's certificate; default: the host of --controller-addr")
	insecure := fs.Bool("insecure", false, "plaintext gRPC without TLS; for tests only (no env variable on purpose)")
	tokenFile := str("token-file", "LEOFLOW_TOKEN_FILE", "", "projected service-account token (audience leoflow) sent with every report")
	identityDir := str("identity-dir", "LEOFLOW_IDENTITY_DIR", podlayout.DefaultIdentityDir, "where the pod's identity files, token and CA bundle are, for whatever no flag or variable sets")
	podName := str("pod-name", "LEOFLOW_POD_NAME", "", "pod name")
	podNamespace := str("pod-namespace", "LEOFLOW_POD_NAMESPACE", "", "pod namespace")
	podUID := str("pod-uid", "LEOFLOW_POD_UID", "", "pod uid")
	container := str("container", "LEOFLOW_CONTAINER", "", "name of the wrapped container")
	dag := str("dag", "LEOFLOW_DAG", "", "DAG name")
	run := str("run", "LEOFLOW_RUN", "", "DAGRun name")
	task := str("task", "LEOFLOW_TASK", "", "task name")
	attempt := str("attempt", "LEOFLOW_ATTEMPT", "", "attempt number")
	outputsDir := str("outputs-dir", "LEOFLOW_OUTPUTS_DIR", "", "directory whose files become the task's outputs")
	termLog := str("termination-log", "LEOFLOW_TERMINATION_LOG", defaultTerminationLog, "where the JSON summary is written")
	cgroupRoot := str("cgroup-root", "LEOFLOW_CGROUP_ROOT", "/sys/fs/cgroup", "cgroup filesystem mount")
	heartbeat := dur("heartbeat-interval", "LEOFLOW_HEARTBEAT_INTERVAL", 10*time.Second, "time between heartbeats; 0 disables them")
	rpcTimeout := dur("rpc-timeout", "LEOFLOW_RPC_TIMEOUT", 2*time.Second, "bound on one attempt of one report")
	giveUp := dur("report-give-up", "LEOFLOW_REPORT_GIVE_UP", time.Minute, "how long Started and Terminating are retried")
	finishTimeout := dur("finish-timeout", "LEOFLOW_FINISH_TIMEOUT", 10*time.Second, "longest the agent waits after the command exited for Finished to be acknowledged")
	waitStart := boolean("wait-start", "LEOFLOW_WAIT_START", "wait for the controller's go before running the command")
	waitStartTimeout := dur("wait-start-timeout", "LEOFLOW_WAIT_START_TIMEOUT", 0, "give up waiting for the go after this long (exit 125); 0: never")

	if err := fs.Parse(args); err != nil {
		return taskrun.Options{}, err
	}
	if len(bad) > 0 {
		return taskrun.Options{}, errors.New(strings.Join(bad, "; "))
	}
	command := fs.Args()
	if len(command) == 0 {
		return taskrun.Options{}, errors.New("no command: use leoflow-agent run [flags] -- CMD [ARGS...]")
	}
	layout, err := podlayout.Read(*identityDir, podlayout.OutputsDir)
	if err != nil {
		warn("pod identity files: %v; reporting without what they hold", err)
	}
	// An empty flag or variable counts as unset, as the downward API sets a missing label's
	// variable to "". What the layout fills in is also given to the command, which used to find
	// it in the environment the webhook set (a task reads LEOFLOW_OUTPUTS_DIR, LEOFLOW_ATTEMPT).
	var filled []string
	for env, value := range map[string]*string{
		"LEOFLOW_POD_NAME": podName, "LEOFLOW_POD_NAMESPACE": podNamespace, "LEOFLOW_POD_UID": podUID,
		"LEOFLOW_DAG": dag, "LEOFLOW_RUN": run, "LEOFLOW_TASK": task, "LEOFLOW_ATTEMPT": attempt,
		"LEOFLOW_TOKEN_FILE": tokenFile, "LEOFLOW_CA_FILE": caFile, "LEOFLOW_OUTPUTS_DIR": outputsDir,
	} {
		if v, ok := layout[env]; ok && *value == "" {
			*value = v
			filled = append(filled, env)
		}
	}
	sort.Strings(filled)
	var attemptN int64
	if *attempt != "" {
		n, err := strconv.ParseInt(*attempt, 10, 32)
		if err != nil || n < 0 {
			return taskrun.Options{}, fmt.Errorf("attempt %q (--attempt, LEOFLOW_ATTEMPT or the label leoflow.io/attempt) is not a non-negative number", *attempt)
		}
		attemptN = n
	}
	opts := taskrun.Options{
		Command:           command,
		Env:               withEnv(os.Environ(), filled, layout),
		WaitStart:         *waitStart,
		WaitStartTimeout:  *waitStartTimeout,
		HeartbeatInterval: *heartbeat,
		ReportGiveUp:      *giveUp,
		FinishTimeout:     *finishTimeout,
		OutputsDir:        *outputsDir,
		OutputsMaxBytes:   outputs.MaxTotalBytes,
		TerminationLog:    *termLog,
		CreateTermination: *termLog != defaultTerminationLog,
		CgroupRoot:        *cgroupRoot,
		ProcCgroup:        "/proc/self/cgroup",
		AgentVersion:      version,
		Warn:              warn,
	}
	if *addr == "" {
		return opts, nil
	}
	client, err := report.Dial(report.Config{
		Addr:       *addr,
		CAFile:     *caFile,
		ServerName: *serverName,
		Insecure:   *insecure,
		TokenFile:  *tokenFile,
		RPCTimeout: *rpcTimeout,
		Warn:       warn,
		Identity: &agentv1.TaskIdentity{
			PodNamespace: *podNamespace, PodName: *podName, PodUid: *podUID, Container: *container,
			Dag: *dag, Run: *run, Task: *task, Attempt: int32(attemptN), AgentVersion: version,
		},
	})
	if err != nil {
		// The command still runs; only its reports are lost, and the termination message remains.
		warn("reports disabled: %v", err)
		return opts, nil
	}
	opts.Reporter = client
	return opts, nil
}

// withEnv returns environ with each of names set to its value in values, replacing any entry of
// that name already there.
func withEnv(environ []string, names []string, values map[string]string) []string {
	if len(names) == 0 {
		return environ
	}
	replaced := map[string]bool{}
	for _, name := range names {
		replaced[name] = true
	}
	env := make([]string, 0, len(environ)+len(names))
	for _, entry := range environ {
		name, _, _ := strings.Cut(entry, "=")
		if !replaced[name] {
			env = append(env, entry)
		}
	}
	for _, name := range names {
		env = append(env, name+"="+values[name])
	}
	return env
}
