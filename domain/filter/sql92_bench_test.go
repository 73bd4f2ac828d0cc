package filter_test

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

const benchExpr = "a > 5 AND b IN ('x','y') OR TAGS = 'T'"

func BenchmarkSQL92Match(b *testing.B) {
	f := compileSQL(b, benchExpr)
	msgs := []*domain.Message{
		{Tag: "U", Properties: map[string]string{"a": "7", "b": "y", "c": "z"}}, // TRUE through the AND
		{Tag: "T", Properties: map[string]string{"a": "3", "b": "y"}},           // TRUE through the OR
		{Tag: "U", Properties: map[string]string{"a": "7", "b": "z"}},           // FALSE
		{Tag: "U", Properties: map[string]string{"b": "y"}},                     // unknown
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Match(msgs[i&3])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkSQL92Compile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: benchExpr}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSQL92MatchDoesNotAllocate(t *testing.T) {
	f := compileSQL(t, benchExpr+" OR KEYS = 'k' OR UNIQ_KEY STARTSWITH 'x' OR c > 1.5 OR NOT (d BETWEEN 1 AND 2)")
	m := &domain.Message{Tag: "U", Keys: []string{"k1"}, ID: "id", Properties: map[string]string{"a": "7", "b": "z", "c": "1e3", "d": "9"}}
	if n := testing.AllocsPerRun(100, func() { f.Match(m) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}
