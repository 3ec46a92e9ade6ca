// Package install copies the running agent binary into a directory shared with the task's
// containers (the init container's job). The copy is written to a temporary file and renamed,
// so a container never sees a half-written binary.
package install

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Name is the file name of the installed agent.
const Name = "leoflow-agent"

// Install copies the executable at self into dir as leoflow-agent, mode 0555, and returns the
// installed path. dir is created when missing.
func Install(self, dir string) (string, error) {
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("reading the agent binary: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+Name+"-*")
	if err != nil {
		return "", fmt.Errorf("install directory: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copying to %s: %w", dir, err)
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copying to %s: %w", dir, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copying to %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("copying to %s: %w", dir, err)
	}
	dest := filepath.Join(dir, Name)
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("installing %s: %w", dest, err)
	}
	return dest, nil
}
