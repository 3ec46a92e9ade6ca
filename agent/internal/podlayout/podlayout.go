// Package podlayout reads what an injected pod tells the agent about itself from files at
// constant paths, so the webhook need not give every wrapped container environment variables.
//
// The webhook used to set twelve variables per wrapped container, seven of them downward-API
// fieldRefs; the API server stores each once per container, and storing that bigger pod was most
// of the latency the webhook added to pod creation (docs/webhook.md, Performance). Now the pod's
// name, namespace, uid and labels are files of one downwardAPI source in the leoflow-identity
// projected volume, beside the token and the CA bundle, and the outputs emptyDir is mounted at a
// constant path. The names here are a contract with leoflow/agent_inject/names.py.
package podlayout

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultIdentityDir is where the webhook mounts the leoflow-identity volume.
const DefaultIdentityDir = "/var/run/secrets/leoflow"

// OutputsDir is where the webhook mounts the outputs emptyDir.
const OutputsDir = "/leoflow/outputs"

// The files of the identity directory.
const (
	PodNameFile      = "pod-name"
	PodNamespaceFile = "pod-namespace"
	PodUIDFile       = "pod-uid"
	LabelsFile       = "labels"
	TokenFile        = "token"
	CAFile           = "ca.crt"
)

// Each downward-API file, and each identity label, stands for the environment variable the
// webhook used to set for it.
var (
	fileVars = []struct{ env, file string }{
		{"LEOFLOW_POD_NAME", PodNameFile},
		{"LEOFLOW_POD_NAMESPACE", PodNamespaceFile},
		{"LEOFLOW_POD_UID", PodUIDFile},
	}
	labelVars = []struct{ env, label string }{
		{"LEOFLOW_DAG", "leoflow.io/dag"},
		{"LEOFLOW_RUN", "leoflow.io/run"},
		{"LEOFLOW_TASK", "leoflow.io/task"},
		{"LEOFLOW_ATTEMPT", "leoflow.io/attempt"},
	}
	pathVars = []struct{ env, file string }{
		{"LEOFLOW_TOKEN_FILE", TokenFile},
		{"LEOFLOW_CA_FILE", CAFile},
	}
)

// Read returns, keyed by the environment variable each stands for, what the layout under
// identityDir and outputsDir provides: the contents of the pod's name, namespace and uid files,
// the identity labels from the labels file (empty when the pod lacks the label, as the
// downward API's env did), and the paths of the token, the CA bundle and the outputs directory
// when they exist. What is absent is left out, so outside an injected pod the result is empty.
// The error names each file that exists but cannot be read or parsed; the rest is still returned.
func Read(identityDir, outputsDir string) (map[string]string, error) {
	values := map[string]string{}
	var problems []error
	for _, f := range fileVars {
		text, err := readIfPresent(filepath.Join(identityDir, f.file))
		if err != nil {
			problems = append(problems, err)
		} else if text != nil {
			values[f.env] = *text
		}
	}
	labelsPath := filepath.Join(identityDir, LabelsFile)
	if text, err := readIfPresent(labelsPath); err != nil {
		problems = append(problems, err)
	} else if text != nil {
		labels, err := ParseLabels(*text)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", labelsPath, err))
		} else {
			for _, l := range labelVars {
				values[l.env] = labels[l.label]
			}
		}
	}
	for _, p := range pathVars {
		path := filepath.Join(identityDir, p.file)
		if info, err := os.Stat(path); err == nil && !info.IsDir() {
			values[p.env] = path
		}
	}
	if info, err := os.Stat(outputsDir); err == nil && info.IsDir() {
		values["LEOFLOW_OUTPUTS_DIR"] = outputsDir
	}
	return values, errors.Join(problems...)
}

// ParseLabels reads the kubelet's rendering of a label map: one key="value" per line, keys
// sorted, each value quoted as Go's strconv.Quote does (k8s.io/kubernetes/pkg/fieldpath FormatMap).
func ParseLabels(text string) (map[string]string, error) {
	labels := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		key, quoted, ok := strings.Cut(line, "=")
		value, err := strconv.Unquote(quoted)
		if !ok || key == "" || err != nil {
			return nil, fmt.Errorf("line %d is not key=\"value\": %q", i+1, line)
		}
		labels[key] = value
	}
	return labels, nil
}

// readIfPresent returns nil for a file that does not exist. The kubelet writes these files
// without a trailing newline; one is trimmed anyway, for files written by hand.
func readIfPresent(path string) (*string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	text := strings.TrimSuffix(string(data), "\n")
	return &text, nil
}
