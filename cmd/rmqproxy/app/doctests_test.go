package app_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// docTestName is a Go test, fuzz target or benchmark named in a code
	// span of a page ("`TestX`", "`TestX/sub`", "`go test -run TestX`").
	docTestName = regexp.MustCompile(`\b((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)`)
	// goTestFunc is the declaration of one.
	goTestFunc = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)\(`)
)

// TestDocsNameOnlyExistingTests: the pages cite tests as the evidence of
// what they say ("TestReleaseNearTheHandlesEndDeliversOnce shows ..."); a
// test renamed or removed leaves a claim without its evidence. Every Go
// test, fuzz target and benchmark a page names in a code span must exist.
func TestDocsNameOnlyExistingTests(t *testing.T) {
	const root = "../../.."
	declared := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "target":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range goTestFunc.FindAllStringSubmatch(string(b), -1) {
			declared[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(declared) < 100 {
		t.Fatalf("found %d tests in the repository: the walk missed them", len(declared))
	}
	pages := docPagePaths(t, root)
	named := 0
	for _, page := range pages {
		b, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		for _, span := range codeSpan.FindAllString(string(b), -1) {
			// In a -run pattern a name is a regular expression that
			// matches every test starting with it.
			pattern := strings.Contains(span, "-run")
			for _, m := range docTestName.FindAllStringSubmatch(span, -1) {
				named++
				if !declared[m[1]] && !(pattern && declaresPrefix(declared, m[1])) {
					t.Errorf("%s names %s, which no _test.go file declares: renamed or removed? name the test that shows it now", page, m[1])
				}
			}
		}
	}
	if named == 0 {
		t.Fatal("the pages name no test: the pattern is broken")
	}
	t.Logf("%d test names in %d pages, all declared (%d tests in the repository)", named, len(pages), len(declared))
}

// declaresPrefix reports whether a declared test starts with prefix.
func declaresPrefix(declared map[string]bool, prefix string) bool {
	for name := range declared {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
