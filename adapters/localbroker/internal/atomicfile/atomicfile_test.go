package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, content := range []string{"one", "two, longer"} {
		if err := Write(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), nil); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// TestRemoveLeftovers: the temporary files of interrupted Writes go (named
// as CreateTemp names them for Write), every other file stays.
func TestRemoveLeftovers(t *testing.T) {
	dir := t.TempDir()
	f, err := os.CreateTemp(dir, tempPrefix+"00000000000000004096.snap"+tempInfix+"*")
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Base(f.Name())
	_ = f.Close()
	keep := []string{"00000000000000004096.snap", "FORMAT", ".FORMAT.tmp", ".tmp5", "a.tmp1", ".x.tmp1x"}
	for _, name := range keep {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".d.tmp1"), 0o755); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveLeftovers(dir)
	if err != nil || len(removed) != 1 || removed[0] != leftover {
		t.Fatalf("RemoveLeftovers = %v, %v; want [%s]", removed, err, leftover)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(keep)+1 {
		t.Fatalf("left %d entries, want %d: %v", len(ents), len(keep)+1, ents)
	}
}
