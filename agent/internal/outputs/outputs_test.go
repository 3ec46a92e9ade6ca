package outputs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name string, size int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("x", size)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOutputsUpToTheCapAreCollected(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "rows", MaxTotalBytes-10)
	write(t, dir, "status", 10)
	write(t, dir, ".hidden", 100)
	got, err := Collect(dir, MaxTotalBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["rows"]) != MaxTotalBytes-10 || string(got["status"]) != "xxxxxxxxxx" {
		t.Fatalf("unexpected outputs: %d entries", len(got))
	}
}

func TestOutputsOverTheCapAreRefusedNamingTheFileAndSizes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "small", 100)
	write(t, dir, "big", MaxTotalBytes)
	got, err := Collect(dir, MaxTotalBytes)
	if err == nil || got != nil {
		t.Fatalf("expected a refusal, got %d outputs", len(got))
	}
	for _, want := range []string{filepath.Join(dir, "big"), "65536 bytes", "65636 bytes", "65536-byte cap"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestMissingOutputsDirMeansNoOutputs(t *testing.T) {
	got, err := Collect(filepath.Join(t.TempDir(), "absent"), MaxTotalBytes)
	if err != nil || got != nil {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestDirectoryInOutputsIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "nested"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Collect(dir, MaxTotalBytes); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("expected a refusal naming the directory, got %v", err)
	}
}

func TestBadOutputNameIsRefused(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "with space", 1)
	if _, err := Collect(dir, MaxTotalBytes); err == nil || !strings.Contains(err.Error(), "with space") {
		t.Fatalf("expected a refusal naming the file, got %v", err)
	}
}
