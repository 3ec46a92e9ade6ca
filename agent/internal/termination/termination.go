// Package termination writes the JSON summary the kubelet copies into the container's
// terminated state (terminationMessagePath): the channel the controller falls back on when the
// Finished report never arrived.
package termination

import (
	"encoding/json"
	"os"
	"unicode/utf8"
)

// MaxBytes is the kubelet's limit for one container's termination message.
const MaxBytes = 4096

// Summary is the message's content.
type Summary struct {
	ExitCode int `json:"exitCode"`
	Signal   int `json:"signal,omitempty"`
	// InterruptedBy is the termination signal the agent forwarded before the command exited:
	// the attempt was stopped from outside (deletion, eviction), whatever its exit code says.
	InterruptedBy int               `json:"interruptedBy,omitempty"`
	DurationMs    int64             `json:"durationMs"`
	PeakRSSBytes  uint64            `json:"peakRssBytes,omitempty"`
	OOMKilled     bool              `json:"oomKilled,omitempty"`
	AgentError    string            `json:"agentError,omitempty"`
	OutputsError  string            `json:"outputsError,omitempty"`
	Outputs       map[string]string `json:"outputs,omitempty"`
	// OutputsOmitted says why outputs that were collected are not in this message.
	OutputsOmitted string `json:"outputsOmitted,omitempty"`
	AgentVersion   string `json:"agentVersion"`
}

// Encode renders s within MaxBytes: outputs that are not UTF-8 or do not fit are left out (the
// Finished report still carries them) and OutputsOmitted says so.
func Encode(s Summary, outputs map[string][]byte) []byte {
	if len(outputs) > 0 {
		s.Outputs = make(map[string]string, len(outputs))
		for name, value := range outputs {
			if !utf8.Valid(value) {
				s.Outputs = nil
				s.OutputsOmitted = "an output is not UTF-8 text"
				break
			}
			s.Outputs[name] = string(value)
		}
	}
	raw, _ := json.Marshal(s)
	if len(raw) > MaxBytes && s.Outputs != nil {
		s.Outputs = nil
		s.OutputsOmitted = "outputs do not fit in the 4096-byte termination message"
		raw, _ = json.Marshal(s)
	}
	if len(raw) > MaxBytes {
		s.AgentError = truncate(s.AgentError, 512)
		s.OutputsError = truncate(s.OutputsError, 512)
		raw, _ = json.Marshal(s)
	}
	return raw
}

func truncate(text string, n int) string {
	if len(text) <= n {
		return text
	}
	for n > 0 && !utf8.RuneStart(text[n]) {
		n--
	}
	return text[:n] + "..."
}

// Write replaces the file's content. create is false for the default path, which the kubelet
// provides: outside a pod the agent must not litter /dev with a new file.
func Write(path string, create bool, message []byte) error {
	flags := os.O_WRONLY | os.O_TRUNC
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(message); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
