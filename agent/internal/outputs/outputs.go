// Package outputs reads the small results a task leaves as files in its outputs directory.
//
// Outputs travel in the Finished report and from there into the DAGRun's status, which lives in
// etcd; a hard total cap keeps one task from bloating that object. Anything bigger belongs in
// object storage, with a reference passed as the output.
package outputs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxTotalBytes is the cap on the sum of all output file sizes.
const MaxTotalBytes = 64 << 10

// validName accepts [A-Za-z0-9][A-Za-z0-9._-]*, at most 253 bytes: safe as a key anywhere.
func validName(name string) bool {
	if name == "" || len(name) > 253 || name[0] == '.' || name[0] == '-' || name[0] == '_' {
		return false
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Collect reads every regular file in dir (symlinks followed) as name -> content. A missing or
// empty dir yields no outputs. Names starting with a dot are ignored. Anything else that cannot
// be an output (a directory, a bad name, a total over maxTotal) refuses all outputs with an
// error that names the file and the sizes.
func Collect(dir string, maxTotal int) (map[string][]byte, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outputs directory: %w", err)
	}
	type file struct {
		name string
		size int64
	}
	var files []file
	var total int64
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		if !validName(name) {
			return nil, fmt.Errorf("output %s: a name must start with a letter or digit and hold only letters, digits, '.', '_' and '-'", path)
		}
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", path, err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("output %s is not a regular file (%s)", path, info.Mode().Type())
		}
		files = append(files, file{name, info.Size()})
		total += info.Size()
	}
	if total > int64(maxTotal) {
		sort.Slice(files, func(i, j int) bool { return files[i].size > files[j].size })
		return nil, fmt.Errorf("outputs in %s total %d bytes, over the %d-byte cap; the largest is %s (%d bytes): "+
			"write large results to object storage and output a reference", dir, total, maxTotal,
			filepath.Join(dir, files[0].name), files[0].size)
	}
	out := make(map[string][]byte, len(files))
	read := 0
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		content, err := readCapped(path, maxTotal-read)
		if err != nil {
			return nil, err
		}
		read += len(content)
		out[f.name] = content
	}
	return out, nil
}

// readCapped reads at most limit bytes, failing if the file grew past it after it was measured.
func readCapped(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", path, err)
	}
	defer f.Close()
	content, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", path, err)
	}
	if len(content) > limit {
		return nil, fmt.Errorf("output %s grew while being read and pushes the outputs over the %d-byte cap", path, MaxTotalBytes)
	}
	return content, nil
}
