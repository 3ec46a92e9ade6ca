package install

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestInstallCopiesAtomicallyWithMode0555(t *testing.T) {
	src := filepath.Join(t.TempDir(), "agent")
	content := bytes.Repeat([]byte("ELF"), 1000)
	if err := os.WriteFile(src, content, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bin")
	dest, err := Install(src, dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("installed copy differs: %v", err)
	}
	info, _ := os.Stat(dest)
	if info.Mode().Perm() != 0o555 {
		t.Fatalf("mode %v, want 0555", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	// Installing again over a read-only copy replaces it.
	if _, err := Install(src, dir); err != nil {
		t.Fatalf("reinstall: %v", err)
	}
}
