// Package atomicfile replaces small files atomically and durably: write a
// temporary file, fsync it, rename it over the target, fsync the directory.
// After a crash a reader sees either the old or the new content, never a mix.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path with data.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	ok = true
	return SyncDir(dir)
}

// tempPrefix and tempInfix frame the names of Write's temporary files:
// "." + the target's name + ".tmp" + a random number.
const (
	tempPrefix = "."
	tempInfix  = ".tmp"
)

// RemoveLeftovers removes from dir the temporary files of Writes that a
// crash interrupted (a Write that returns removes its own), and returns
// their names. Only the directory's owner may call it: a Write under way in
// dir loses its temporary file.
func RemoveLeftovers(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, ent := range ents {
		name := ent.Name()
		i := strings.LastIndex(name, tempInfix)
		if !ent.Type().IsRegular() || !strings.HasPrefix(name, tempPrefix) || i <= len(tempPrefix) || !allDigits(name[i+len(tempInfix):]) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// SyncDir fsyncs a directory so that names created, renamed or removed in it
// are durable.
func SyncDir(dir string) error { return syncPath(dir, "directory ") }

// SyncFile fsyncs the file at path (written through another handle).
func SyncFile(path string) error { return syncPath(path, "") }

func syncPath(p, what string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("open %s%s: %w", what, p, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s%s: %w", what, p, err)
	}
	return nil
}
