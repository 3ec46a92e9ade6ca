package termination

import (
	"encoding/json"
	"strings"
	"testing"
)

func decode(t *testing.T, raw []byte) Summary {
	t.Helper()
	var s Summary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	return s
}

func TestSmallTextOutputsAreIncluded(t *testing.T) {
	s := decode(t, Encode(Summary{ExitCode: 3}, map[string][]byte{"answer": []byte("42")}))
	if s.ExitCode != 3 || s.Outputs["answer"] != "42" || s.OutputsOmitted != "" {
		t.Fatalf("got %+v", s)
	}
}

func TestOutputsThatDoNotFitAreOmittedWithAReason(t *testing.T) {
	raw := Encode(Summary{ExitCode: 0}, map[string][]byte{"big": []byte(strings.Repeat("x", 5000))})
	s := decode(t, raw)
	if len(raw) > MaxBytes || s.Outputs != nil || !strings.Contains(s.OutputsOmitted, "4096") {
		t.Fatalf("%d bytes: %+v", len(raw), s)
	}
}

func TestBinaryOutputsAreOmitted(t *testing.T) {
	s := decode(t, Encode(Summary{}, map[string][]byte{"blob": {0xff, 0xfe}}))
	if s.Outputs != nil || !strings.Contains(s.OutputsOmitted, "UTF-8") {
		t.Fatalf("got %+v", s)
	}
}

func TestLongErrorsAreTruncatedToFit(t *testing.T) {
	raw := Encode(Summary{AgentError: strings.Repeat("é", 3000), OutputsError: strings.Repeat("e", 3000)}, nil)
	s := decode(t, raw)
	if len(raw) > MaxBytes || !strings.HasSuffix(s.AgentError, "...") {
		t.Fatalf("%d bytes", len(raw))
	}
}
