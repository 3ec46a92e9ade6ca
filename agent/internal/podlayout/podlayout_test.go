package podlayout

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// kubeletLabels renders labels as the kubelet does (fieldpath.FormatMap): sorted, quoted, no final newline.
const kubeletLabels = `app.kubernetes.io/managed-by="leoflow"
leoflow.io/attempt="2"
leoflow.io/dag="etl"
leoflow.io/inject="true"
leoflow.io/run="etl-20261124"
leoflow.io/task="extract"`

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAnInjectedPodsLayoutYieldsEveryIdentityValueAndPath(t *testing.T) {
	dir, outputs := t.TempDir(), t.TempDir()
	write(t, dir, PodNameFile, "etl-extract-1")
	write(t, dir, PodNamespaceFile, "team-a")
	write(t, dir, PodUIDFile, "0b6f4a9e-uid")
	write(t, dir, LabelsFile, kubeletLabels)
	write(t, dir, TokenFile, "token")
	write(t, dir, CAFile, "pem")

	got, err := Read(dir, outputs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"LEOFLOW_POD_NAME": "etl-extract-1", "LEOFLOW_POD_NAMESPACE": "team-a", "LEOFLOW_POD_UID": "0b6f4a9e-uid",
		"LEOFLOW_DAG": "etl", "LEOFLOW_RUN": "etl-20261124", "LEOFLOW_TASK": "extract", "LEOFLOW_ATTEMPT": "2",
		"LEOFLOW_TOKEN_FILE": filepath.Join(dir, TokenFile), "LEOFLOW_CA_FILE": filepath.Join(dir, CAFile),
		"LEOFLOW_OUTPUTS_DIR": outputs,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestOutsideAPodNothingIsProvided(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent")
	got, err := Read(missing, missing)
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want nothing", got, err)
	}
}

func TestALabelThePodLacksIsEmptyAndAnAbsentCABundleIsLeftOut(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, LabelsFile, `leoflow.io/inject="true"`)
	write(t, dir, TokenFile, "token")
	got, err := Read(dir, filepath.Join(dir, "no-outputs"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got["LEOFLOW_TASK"]; !ok || v != "" {
		t.Fatalf("LEOFLOW_TASK = %q, %v; want present and empty, as the downward-API env was", v, ok)
	}
	for _, absent := range []string{"LEOFLOW_CA_FILE", "LEOFLOW_OUTPUTS_DIR", "LEOFLOW_POD_NAME"} {
		if _, ok := got[absent]; ok {
			t.Fatalf("%s present in %v", absent, got)
		}
	}
}

func TestAMalformedLabelsFileIsNamedAndTheRestStillRead(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, PodNameFile, "p")
	write(t, dir, LabelsFile, "leoflow.io/dag=etl")
	got, err := Read(dir, dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, LabelsFile)) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("error %v does not name the labels file and line", err)
	}
	if got["LEOFLOW_POD_NAME"] != "p" {
		t.Fatalf("the pod name was lost: %v", got)
	}
	if _, ok := got["LEOFLOW_DAG"]; ok {
		t.Fatalf("a label from a malformed file was trusted: %v", got)
	}
}

func TestLabelValuesAreUnquotedAsTheKubeletQuotesThem(t *testing.T) {
	got, err := ParseLabels("a=\"x\\\"y\"\nb/c=\"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": `x"y`, "b/c": ""}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}
