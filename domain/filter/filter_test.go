package filter_test

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

func TestTagFilter(t *testing.T) {
	cases := []struct {
		expr  string
		tag   string
		match bool
	}{
		{"*", "", true},
		{"", "x", true},
		{"a", "a", true},
		{"a", "b", false},
		{"a", "", false},
		{"a||b", "b", true},
		{" a || b ", "b", true},
		{"a||", "a", true},
		{"|| a", "a", true},
		{" \t*\n", "x", true},
		// Trimmed as Java's String.trim: other white space is the tag's.
		{"a\u00a0", "a\u00a0", true},
		{"a\u00a0", "a", false},
		{" \u3000a ||b", "\u3000a", true},
		{" \u3000a ||b", "a", false},
		{"\u3000", "\u3000", true},
		{"\u3000", "x", false},
	}
	for _, c := range cases {
		f, err := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: c.expr})
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		if got := f.Match(&domain.Message{Tag: c.tag}); got != c.match {
			t.Errorf("%q matching tag %q = %v", c.expr, c.tag, got)
		}
	}
	for _, bad := range []string{"||", "||||", " || ", "||\t", " ||  || "} {
		if _, err := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: bad}); !domain.HasReason(err, domain.ReasonIllegalFilterExpression) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"*", "", "a||b", "||", " a ", "TagA||TagB||TagC", "a = 1", "x BETWEEN 1 AND 2"} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, text string, typ uint8) {
		fl, err := filter.Compile(filter.Expression{Type: filter.Type(typ % 3), Text: text})
		if err != nil {
			if !domain.HasReason(err, domain.ReasonIllegalFilterExpression) {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		fl.Match(&domain.Message{Tag: text, Properties: map[string]string{"a": text}})
		again, err := filter.Compile(fl.Expression())
		if err != nil {
			t.Fatalf("recompiling %q: %v", fl.Expression().Text, err)
		}
		_ = again
	})
}
