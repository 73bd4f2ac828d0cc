package filter_test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

var identRE = regexp.MustCompile(`[A-Za-z_$][A-Za-z0-9_$]*`)

// fuzzMessages builds a few messages that give every identifier of text one
// of a handful of values, v included, so that comparisons take both sides.
func fuzzMessages(text, v string) []*domain.Message {
	names := identRE.FindAllString(text, 8)
	pool := []string{v, "1", "5.5", "x", "true", "NaN", " 7", "-3"}
	msgs := []*domain.Message{nil, {}}
	for i := range pool {
		m := &domain.Message{Tag: pool[(i+1)%len(pool)], Keys: []string{v, "k"}, Properties: map[string]string{}}
		for j, n := range names {
			if (i+j)%3 != 2 { // leave some properties missing
				m.Properties[n] = pool[(i+j)%len(pool)]
			}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func FuzzCompileSQL92(f *testing.F) {
	b, err := os.ReadFile("testdata/sql92_vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var vectors struct {
		Cases []struct {
			Expr string `json:"expr"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		f.Fatal(err)
	}
	for _, c := range vectors.Cases {
		f.Add(c.Expr, "5")
	}
	for _, s := range []string{
		"a > 5 AND b IN ('x','y') OR TAGS = 'T'",
		"KEYS CONTAINS 'k' AND UNIQ_KEY IS NOT NULL",
		"((((a))))", "NOT NOT NOT a", "a BETWEEN -1 AND 1e3", "'unterminated", "/* open", "a = 1 -- x\n",
	} {
		f.Add(s, "x")
	}
	f.Fuzz(func(t *testing.T, text, v string) {
		fl, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: text})
		if err != nil {
			if !domain.HasReason(err, domain.ReasonIllegalFilterExpression) {
				t.Fatalf("%q: error without the reason: %v", text, err)
			}
			var se *filter.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: error without a position: %v", text, err)
			}
			if se.Offset < 0 || se.Offset > len(text) || se.Line < 1 || se.Column < 1 {
				t.Fatalf("%q: bad position %+v", text, se)
			}
			return
		}
		e := fl.Expression()
		if e.Type != filter.TypeSQL92 || e.Text != text {
			t.Fatalf("Expression() = %+v, want %q", e, text)
		}
		again, err := filter.Compile(e)
		if err != nil {
			t.Fatalf("recompiling %q: %v", text, err)
		}
		for _, m := range fuzzMessages(text, v) {
			got := fl.Match(m)
			if got != again.Match(m) || got != fl.Match(m) {
				t.Fatalf("%q on %+v: filters disagree", text, m)
			}
		}
	})
}
