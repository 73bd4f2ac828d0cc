package app_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// docPages are the Markdown pages whose relative links TestDocLinks checks,
// relative to the repository root; docs/*.md are added by glob.
var docPages = []string{"README.md", "deployments/README.md", "migrations/README.md"}

var (
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s*(\S+)`)
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
	htmlAnchor = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	mdLinkText = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// docPagePaths returns docPages and docs/*.md, relative to root.
func docPagePaths(t *testing.T, root string) []string {
	t.Helper()
	pages := append([]string(nil), docPages...)
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		rel, _ := filepath.Rel(root, m)
		pages = append(pages, rel)
	}
	return pages
}

// TestDocLinks checks that every relative link of README.md and docs/*.md
// names a file or directory of the repository, and that every #anchor names
// a heading (as GitHub derives its anchor) of the page it points into.
func TestDocLinks(t *testing.T) {
	const root = "../../.."
	pages := docPagePaths(t, root)
	anchors := map[string]map[string]bool{} // page (relative to root) -> anchors
	anchorsOf := func(page string) map[string]bool {
		if a, ok := anchors[page]; ok {
			return a
		}
		b, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		a := headingAnchors(string(b))
		anchors[page] = a
		return a
	}
	checked := 0
	for _, page := range pages {
		b, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range markdownLinks(string(b)) {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			path, anchor, _ := strings.Cut(target, "#")
			dest := page
			if path != "" {
				dest = filepath.Clean(filepath.Join(filepath.Dir(page), path))
				if strings.HasPrefix(dest, "..") {
					t.Errorf("%s: link %q leaves the repository", page, target)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, dest)); err != nil {
					t.Errorf("%s: link %q: %s does not exist", page, target, dest)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(dest, ".md") {
				t.Errorf("%s: link %q: anchor into a page that is not Markdown", page, target)
				continue
			}
			if !anchorsOf(dest)[anchor] {
				t.Errorf("%s: link %q: %s has no heading with anchor #%s", page, target, dest, anchor)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the link pattern is broken")
	}
}

// markdownLinks returns the targets of the inline and reference links of a
// Markdown page, outside fenced code blocks and code spans.
func markdownLinks(s string) []string {
	var out []string
	for _, block := range proseBlocks(s) {
		block = codeSpan.ReplaceAllString(block, "")
		for _, m := range inlineLink.FindAllStringSubmatch(block, -1) {
			out = append(out, m[1])
		}
		for _, m := range refLink.FindAllStringSubmatch(block, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// proseBlocks splits a Markdown page into the runs of lines outside fenced
// code blocks.
func proseBlocks(s string) []string {
	var out []string
	var cur strings.Builder
	fenced := false
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			if fenced {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		if !fenced {
			cur.WriteString(line)
			cur.WriteByte('\n')
		}
	}
	return append(out, cur.String())
}

// headingAnchors returns the anchors GitHub gives the headings of a page
// (lower case, punctuation dropped, spaces as hyphens, -1, -2 ... for
// repeats), and explicit <a name|id="..."> anchors.
func headingAnchors(s string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, block := range proseBlocks(s) {
		for _, line := range strings.Split(block, "\n") {
			for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
				out[m[1]] = true
			}
			text, ok := strings.CutPrefix(line, "#")
			if !ok {
				continue
			}
			text = strings.TrimLeft(text, "#")
			if !strings.HasPrefix(text, " ") {
				continue
			}
			slug := headingSlug(text)
			if n := seen[slug]; n > 0 {
				out[slug+"-"+strconv.Itoa(n)] = true
			} else {
				out[slug] = true
			}
			seen[slug]++
		}
	}
	return out
}

func headingSlug(text string) string {
	text = mdLinkText.ReplaceAllString(strings.TrimSpace(text), "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestHeadingSlug pins the anchor derivation TestDocLinks relies on to
// GitHub's for the kinds of heading these pages have.
func TestHeadingSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Cluster mode":                     "cluster-mode",
		"`rmqproxy client` commands":       "rmqproxy-client-commands",
		"Send, receive & ack (local mode)": "send-receive--ack-local-mode",
		"What [docs](x.md) say: 1.2/1.3":   "what-docs-say-1213",
		"Snake_case stays":                 "snake_case-stays",
	} {
		if got := headingSlug(in); got != want {
			t.Errorf("headingSlug(%q) = %q, want %q", in, got, want)
		}
	}
}
