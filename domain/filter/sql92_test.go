package filter_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

func compileSQL(t testing.TB, text string) filter.Filter {
	t.Helper()
	f, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: text})
	if err != nil {
		t.Fatalf("compile %q: %v", text, err)
	}
	return f
}

// props builds a message with user properties from "k=v" pairs.
func props(kv ...string) *domain.Message {
	m := &domain.Message{Properties: map[string]string{}}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		m.Properties[k] = v
	}
	return m
}

type matchCase struct {
	name string
	expr string
	msg  *domain.Message
	want bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := compileSQL(t, c.expr)
			if got := f.Match(c.msg); got != c.want {
				t.Errorf("%q on %+v = %v, want %v", c.expr, c.msg, got, c.want)
			}
		})
	}
}

func TestSQL92Operators(t *testing.T) {
	a5 := props("a=5", "b=x", "s=hello world")
	runMatchCases(t, []matchCase{
		{"eq number", "a = 5", a5, true},
		{"eq number false", "a = 6", a5, false},
		{"eq string", "b = 'x'", a5, true},
		{"ne", "a <> 6", a5, true},
		{"ne equal", "a <> 5", a5, false},
		{"gt", "a > 4", a5, true},
		{"gt equal", "a > 5", a5, false},
		{"ge", "a >= 5", a5, true},
		{"lt", "a < 6", a5, true},
		{"lt equal", "a < 5", a5, false},
		{"le", "a <= 5", a5, true},
		{"between", "a BETWEEN 1 AND 10", a5, true},
		{"between inclusive low", "a BETWEEN 5 AND 10", a5, true},
		{"between inclusive high", "a BETWEEN 1 AND 5", a5, true},
		{"between outside", "a BETWEEN 6 AND 10", a5, false},
		{"not between", "a NOT BETWEEN 6 AND 10", a5, true},
		{"not between inside", "a NOT BETWEEN 1 AND 10", a5, false},
		{"in", "b IN ('x', 'y')", a5, true},
		{"in one", "b IN ('x')", a5, true},
		{"in miss", "b IN ('y', 'z')", a5, false},
		{"in long list", "b IN ('a','b','c','d','e','f','g','h','x')", a5, true},
		{"in long list miss", "b IN ('a','b','c','d','e','f','g','h','i')", a5, false},
		{"not in", "b NOT IN ('y', 'z')", a5, true},
		{"not in hit", "b NOT IN ('x')", a5, false},
		{"is null", "c IS NULL", a5, true},
		{"is null present", "a IS NULL", a5, false},
		{"is not null", "a IS NOT NULL", a5, true},
		{"is not null missing", "c IS NOT NULL", a5, false},
		{"contains", "s CONTAINS 'lo w'", a5, true},
		{"not contains", "s NOT CONTAINS 'xyz'", a5, true},
		{"startswith", "s STARTSWITH 'hell'", a5, true},
		{"not startswith", "s NOT STARTSWITH 'hell'", a5, false},
		{"endswith", "s ENDSWITH 'world'", a5, true},
		{"not endswith", "s NOT ENDSWITH 'xyz'", a5, true},
		{"and", "a = 5 AND b = 'x'", a5, true},
		{"and false", "a = 5 AND b = 'y'", a5, false},
		{"or", "a = 6 OR b = 'x'", a5, true},
		{"or false", "a = 6 OR b = 'y'", a5, false},
		{"not", "NOT (a = 6)", a5, true},
		{"parentheses", "(a = 6 OR b = 'x') AND (s IS NOT NULL)", a5, true},
		{"true", "TRUE", a5, true},
		{"false", "FALSE", a5, false},
		{"null", "NULL", a5, false},
		{"negative literal", "a > -1", a5, true},
		{"double negation", "a = - -5", a5, true},
		{"unary plus", "a = +5", a5, true},
		{"long literal", "a = 5L", a5, true},
		{"float literal", "a = 5.0", a5, true},
		{"exponent literal", "a = .5e1", a5, true},
		{"quote escape", "q = 'it''s'", props("q=it's"), true},
		{"empty string literal", "a <> ''", a5, true},
		{"line comment", "a = 5 -- the answer\n AND b = 'x'", a5, true},
		{"block comment", "a = 5 /* and */ AND /* b */ b = 'x'", a5, true},
		{"dollar and underscore names", "$x = 'p' AND _y = 'q' AND z9 = 'r'", props("$x=p", "_y=q", "z9=r"), true},
	})
}

func TestSQL92Precedence(t *testing.T) {
	// Each pair must agree on every message of the grid.
	same := []struct{ a, b string }{
		{"a = 1 OR b = 1 AND c = 1", "a = 1 OR (b = 1 AND c = 1)"},
		{"a = 1 AND b = 1 OR c = 1", "(a = 1 AND b = 1) OR c = 1"},
		{"a = 1 OR b = 1 OR c = 1", "(a = 1 OR b = 1) OR c = 1"},
		{"a = 1 OR b = 1 OR c = 1", "a = 1 OR (b = 1 OR c = 1)"},
		{"a = 1 AND b = 1 AND c = 1", "a = 1 AND (b = 1 AND c = 1)"},
		{"NOT a = 1 OR b = 1", "((NOT a) = 1) OR b = 1"},                   // NOT binds tighter than '='
		{"NOT a IS NULL", "(NOT a) IS NULL"},                               // and than IS NULL
		{"a > 1 = b > 1", "(a > 1) = (b > 1)"},                             // comparisons bind tighter than equality
		{"a = 1 = TRUE", "(a = 1) = TRUE"},                                 // equality is left-associative
		{"a BETWEEN 1 AND 2 AND b = 1", "(a BETWEEN 1 AND 2) AND (b = 1)"}, // BETWEEN takes its own AND
		{"NOT NOT a = 1", "(NOT (NOT a)) = 1"},
		{"- - a = 1", "(-(-a)) = 1"},
	}
	values := []string{"", "1", "2", "x", "true"}
	for _, p := range same {
		t.Run(p.a, func(t *testing.T) {
			fa, fb := compileSQL(t, p.a), compileSQL(t, p.b)
			for _, va := range values {
				for _, vb := range values {
					for _, vc := range values {
						m := props("a="+va, "b="+vb, "c="+vc)
						if fa.Match(m) != fb.Match(m) {
							t.Errorf("a=%q b=%q c=%q: %q = %v, %q = %v", va, vb, vc, p.a, fa.Match(m), p.b, fb.Match(m))
						}
					}
				}
			}
		})
	}
	// And an explicit check that the grouping is not the SQL one.
	runMatchCases(t, []matchCase{
		{"or under and", "a = 1 OR b = 1 AND c = 1", props("a=1", "b=2", "c=2"), true},
		{"and over or", "a = 1 AND b = 1 OR c = 1", props("a=2", "b=2", "c=1"), true},
		{"NOT binds to the operand", "NOT a = 1", props("a=1"), false},
		{"NOT of a parenthesized comparison", "NOT (a = 1)", props("a=2"), true},
	})
}

func TestSQL92Keywords(t *testing.T) {
	m := props("a=5", "b=x")
	for _, text := range []string{
		"a = 5 AND b IN ('x') AND c IS NULL AND a BETWEEN 1 AND 9 AND b NOT IN ('y') AND TRUE AND NOT FALSE",
		"a = 5 and b in ('x') and c is null and a between 1 and 9 and b not in ('y') and true and not false",
		"a = 5 AnD b In ('x') aNd c iS nUlL AND a BeTwEeN 1 aNd 9 AND b NoT iN ('y') AND True AND Not False",
		"b contains 'x' AND b startswith 'x' AND b endswith 'x' AND b Not Contains 'y' OR FALSE",
		"b CONTAINS 'x' AND b STARTSWITH 'x' AND b ENDSWITH 'x' AND b NOT CONTAINS 'y' OR false",
	} {
		if !compileSQL(t, text).Match(m) {
			t.Errorf("%q does not match", text)
		}
	}
	// Property names are case-sensitive, and keywords are not names.
	runMatchCases(t, []matchCase{
		{"lower-case name", "tags = 'T'", &domain.Message{Tag: "T"}, false},
		{"system name", "TAGS = 'T'", &domain.Message{Tag: "T"}, true},
		{"name case", "A = 5", props("a=5"), false},
		{"keyword prefix is a name", "notes = 'n' AND ins = 'i' AND isx = 'x'", props("notes=n", "ins=i", "isx=x"), true},
	})
}

func TestSQL92NullSemantics(t *testing.T) {
	none := props()
	both := props("a=1", "b=1")
	onlyA := props("a=1")
	onlyB := props("b=1")
	runMatchCases(t, []matchCase{
		{"missing = literal", "a = 1", none, false},
		{"NOT (missing = literal)", "NOT (a = 1)", none, false},
		{"missing <> literal", "a <> 1", none, false},
		{"missing > literal", "a > 1", none, false},
		{"NOT (missing > literal)", "NOT (a > 1)", none, false},
		{"missing BETWEEN", "a BETWEEN 0 AND 2", none, false},
		{"missing NOT BETWEEN", "a NOT BETWEEN 0 AND 2", none, false},
		{"missing IN", "a IN ('1')", none, false},
		{"missing NOT IN", "a NOT IN ('1')", none, false},
		// ComparisonExpression.java lines 85-102 (rocketmq-all-5.3.3): CONTAINS is FALSE, not NULL.
		{"missing CONTAINS", "a CONTAINS '1'", none, false},
		{"missing NOT CONTAINS", "a NOT CONTAINS '1'", none, false},
		{"NOT (missing CONTAINS)", "NOT (a CONTAINS '1')", none, true},
		{"unknown OR true", "a = 1 OR TRUE", none, true},
		{"unknown AND false", "NOT (a = 1 AND FALSE)", none, true},
		{"unknown AND true", "a = 1 AND TRUE", none, false},
		{"NOT unknown", "NOT (a = 1 AND TRUE)", none, false},
		{"bare property present", "a", onlyA, false},
		{"NOT bare property present", "NOT a", onlyA, true},
		{"NOT bare property missing", "NOT a", none, false},
		// ComparisonExpression.java lines 367-385 (rocketmq-all-5.3.3): NULL handling of "=".
		{"both missing are equal", "a = b", none, true},
		{"both missing <>", "a <> b", none, false},
		{"right missing is FALSE", "a = b", onlyA, false},
		{"right missing <> is TRUE", "a <> b", onlyA, true},
		{"left missing is NULL", "a = b", onlyB, false},
		{"left missing <> is NULL", "a <> b", onlyB, false},
		{"both present", "a = b", both, true},
		{"NULL IS NULL", "NULL IS NULL", none, true},
		{"literal IS NULL", "1 IS NULL", none, false},
		{"empty value is missing", "a IS NULL", props("a="), true},
		{"empty tag is missing", "TAGS IS NULL", &domain.Message{}, true},
		{"nil properties", "a IS NULL", &domain.Message{}, true},
		{"nil message", "a IS NULL", nil, true},
		{"nil message comparison", "a = 1", nil, false},
	})
}

func TestSQL92NumbersAndStrings(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"leading zeros", "a = 5", props("a=005"), true},
		{"plus sign", "a = 7", props("a=+7"), true},
		{"fullwidth digits", "a = 12", props("a=１２"), true},
		{"arabic-indic digit", "a = 3", props("a=٣"), true},
		{"supplementary digit aborts", "a = 5", props("a=𝟓"), false},
		{"decimal text against an integer aborts", "a = 5", props("a=5.0"), false},
		{"decimal text against a double", "a = 5.0", props("a=5"), true},
		{"space against an integer aborts", "a = 5", props("a= 5"), false},
		{"space against a double is trimmed", "a = 5.0", props("a= 5"), true},
		{"past int32 against an integer aborts", "a > 5", props("a=3000000000"), false},
		{"past int32 against a long", "a > 2147483648", props("a=3000000000"), true},
		{"against a double", "a > 5.0", props("a=3000000000"), true},
		{"f suffix", "a = 1.5", props("a=1.5f"), true},
		{"hex double", "a = 16.0", props("a=0x10p0"), true},
		{"exponent", "a = 1000.0", props("a=1e3"), true},
		{"NaN is above everything", "a > 1.0E308", props("a=NaN"), true},
		{"NaN equals itself", "a >= b AND a <= b", props("a=NaN", "b=NaN"), true},
		{"infinity", "a > 1.0E308", props("a=Infinity"), true},
		{"minus zero below zero", "a < b", props("a=-0.0", "b=0"), true},
		{"two properties compare as doubles", "a > b", props("a=10", "b=9"), true},
		{"two properties, not numbers, abort", "a > b", props("a=x", "b=y"), false},
		{"string equality is exact", "a = 'X'", props("a=x"), false},
		{"numeric text against a string literal", "a = '5'", props("a=05"), false},
		{"boolean text", "a = TRUE", props("a=tRuE"), true},
		{"other text is FALSE", "a = FALSE", props("a=yes"), true},
		{"boolean literal on the left aborts", "TRUE = a", props("a=true"), false},
		{"boolean against number is not equal", "1 = TRUE", props(), false},
		{"integer against double", "a = 1", props("a=1"), true},
		{"negation of a property is NULL", "-a = -5", props("a=5"), false},
		{"int32 minimum", "a = -2147483648", props("a=-2147483648"), true},
		{"int64 maximum", "a = 9223372036854775807", props("a=9223372036854775807"), true},
	})
}

// TestSQL92AbortStopsEverything checks that an exception upstream (a value
// that does not parse) rejects the message even when a later OR operand is
// TRUE, while an earlier TRUE short-circuits (broker module,
// ExpressionMessageFilter.java lines 143-159 at rocketmq-all-5.3.3).
func TestSQL92AbortStopsEverything(t *testing.T) {
	m := &domain.Message{Tag: "T", Properties: map[string]string{"a": "x"}}
	runMatchCases(t, []matchCase{
		{"abort first", "a > 5 OR TAGS = 'T'", m, false},
		{"true first", "TAGS = 'T' OR a > 5", m, true},
		{"abort under NOT", "NOT (a > 5)", m, false},
		{"false first in AND", "TAGS = 'U' AND a > 5", m, false},
		{"abort in AND", "NOT (a > 5 AND TAGS = 'U')", m, false},
	})
}

// TestSQL92TrailingInput pins upstream's missing end-of-input check
// (SelectorParser.jj lines 200-212 at rocketmq-all-5.3.3: JmsSelector has no
// <EOF>): text after a complete expression is ignored, except that the next
// token must lex and must not continue the expression.
func TestSQL92TrailingInput(t *testing.T) {
	m := props("a=1", "b=3")
	runMatchCases(t, []matchCase{
		{"missing AND", "a = 1 b = 2", m, true},
		{"octal-looking literal", "a = 01", m, false}, // a = 0, then 1
		{"minus after", "a = 1 - 1", m, true},
		{"closing parenthesis", "a = 1)", m, true},
		{"LIKE is not supported", "a LIKE 'x%'", m, false}, // bare a, then LIKE
		{"only the next token is read", "a = 1 x #", m, true},
		{"line comment without a line break", "a = 1 -- c", m, true},
		{"double minus without a line break", "a = --1", m, true},
	})
}

func TestSQL92SystemProperties(t *testing.T) {
	deliver := time.UnixMilli(1700000000123)
	born := time.UnixMilli(1600000000456)
	m := &domain.Message{
		Tag:                 "TagA",
		Keys:                []string{"k1", "k2"},
		ID:                  "01ABC",
		Group:               "g1",
		DeliverAt:           deliver,
		Transactional:       true,
		TransactionRecovery: 30*time.Second + 500*time.Millisecond,
		TraceContext:        "00-trace",
		BornHost:            "10.0.0.1",
		BornAt:              born,
		ReconsumeTimes:      2,
		Properties:          map[string]string{"TAGS": "shadowed", "PGROUP": "ignored-by-domain", "u": "user"},
	}
	runMatchCases(t, []matchCase{
		{"tag", "TAGS = 'TagA'", m, true},
		{"system shadows user", "TAGS = 'shadowed'", m, false},
		{"keys joined by a space", "KEYS = 'k1 k2'", m, true},
		{"one key", "KEYS = 'k1'", &domain.Message{Keys: []string{"k1"}}, true},
		{"keys contain", "KEYS CONTAINS 'k2'", m, true},
		{"message id", "UNIQ_KEY = '01ABC'", m, true},
		{"message group", "__SHARDINGKEY = 'g1'", m, true},
		{"delivery time", "TIMER_DELIVER_MS = 1700000000123", m, true},
		{"delivery time range", "TIMER_DELIVER_MS > 1600000000000", m, true},
		{"transaction recovery", "CHECK_IMMUNITY_TIME_IN_SECONDS = 30", m, true},
		{"reconsume times", "RECONSUME_TIME = 2", m, true},
		{"reconsume times zero is present", "RECONSUME_TIME = 0", &domain.Message{}, true},
		{"trace context", "TRACE_CONTEXT = '00-trace'", m, true},
		{"born host", "__BORNHOST = '10.0.0.1'", m, true},
		{"born timestamp", "BORN_TIMESTAMP = 1600000000456", m, true},
		{"user property beside", "u = 'user'", m, true},
		{"broker-only property falls back to user properties", "PGROUP = 'ignored-by-domain'", m, true},
		{"no delivery time", "TIMER_DELIVER_MS IS NULL", &domain.Message{}, true},
		{"no recovery unless transactional", "CHECK_IMMUNITY_TIME_IN_SECONDS IS NULL", &domain.Message{TransactionRecovery: time.Second}, true},
		{"no keys", "KEYS IS NULL", &domain.Message{}, true},
		{"transactional", "TRAN_MSG = 'true'", m, true},
		{"transaction id is the message id", "__transactionId__ = '01ABC'", m, true},
		{"not transactional", "TRAN_MSG IS NULL AND __transactionId__ IS NULL", &domain.Message{ID: "01ABC"}, true},
	})
}

func TestSQL92CompileErrors(t *testing.T) {
	cases := []struct {
		name, text   string
		line, column int
	}{
		{"empty", "", 1, 1},
		{"blank", "   ", 1, 4},
		{"star", "*", 1, 1},
		{"missing operand", "a >", 1, 4},
		{"missing operand after AND", "a = 1 AND", 1, 10},
		{"string ordered", "a > 'x'", 1, 5},
		{"boolean ordered", "a <= TRUE", 1, 6},
		{"NULL ordered", "NULL < a", 1, 1},
		{"condition ordered", "(a > 1) > 0", 1, 1},
		{"chained comparison", "a > 1 > 2", 1, 1},
		{"NOT over a comparison", "NOT a > 1", 1, 1},
		{"NOT over BETWEEN", "NOT a BETWEEN 1 AND 2", 1, 1},
		{"NOT over IN", "NOT a IN ('x')", 1, 1},
		{"NULL equality", "a = NULL", 1, 5},
		{"NULL inequality", "NULL <> a", 1, 1},
		{"TRUE against a number", "TRUE = 1", 1, 1},
		{"BETWEEN reversed", "a BETWEEN 5 AND 1", 1, 11},
		{"BETWEEN NULL", "a BETWEEN NULL AND 1", 1, 3},
		{"BETWEEN strings", "a BETWEEN 'a' AND 'b'", 1, 11},
		{"BETWEEN without AND", "a BETWEEN 1 OR 2", 1, 13},
		{"IN without parenthesis", "a IN 'x'", 1, 6},
		{"IN empty", "a IN ()", 1, 7},
		{"IN number", "a IN (1)", 1, 7},
		{"IN trailing comma", "a IN ('x',)", 1, 11},
		{"IN unclosed", "a IN ('x'", 1, 10},
		{"IN on a literal", "'x' IN ('x')", 1, 1},
		{"CONTAINS a property", "a CONTAINS b", 1, 12},
		{"IS alone", "a IS", 1, 5},
		{"IS NOT alone", "a IS NOT 1", 1, 10},
		{"NOT alone", "a NOT x", 1, 7},
		{"not a condition", "1", 1, 1},
		{"string is not a condition", "'x' AND a", 1, 1},
		{"negation is not a condition", "NOT -a", 1, 5},
		{"zero double", "a = 0.0", 1, 5},
		{"underflowing double", "a = 1e-400", 1, 5},
		{"overflowing double", "a = 1e400", 1, 5},
		{"overflowing integer", "a = 9223372036854775808", 1, 5},
		{"bang equals", "a != 1", 1, 3},
		{"double equals", "a == 1", 1, 4},
		{"double quotes", `a = "x"`, 1, 5},
		{"unterminated string", "a = 'x", 1, 5},
		{"unterminated after an escape", "a = 'x''", 1, 8},
		{"unterminated comment", "a = 1 /* x", 1, 7},
		{"bad character after the expression", "a = 1 #", 1, 7},
		{"non-ASCII name", "é = 1", 1, 1},
		{"no-break space", "a = 1 \u00a0", 1, 7},
		{"vertical tab", "a = 1\vAND b = 2", 1, 6},
		{"unclosed parenthesis", "(a = 1", 1, 7},
		{"second line", "a = 1\nAND b >", 2, 8},
		{"column counts characters", "s = 'été' AND #", 1, 15},
		{"after CRLF", "a = 1\r\n AND #", 2, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: c.text})
			if !domain.HasReason(err, domain.ReasonIllegalFilterExpression) {
				t.Fatalf("%q: got %v, want an illegal filter expression", c.text, err)
			}
			var se *filter.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: %v has no *SyntaxError", c.text, err)
			}
			if se.Line != c.line || se.Column != c.column {
				t.Errorf("%q: error at line %d, column %d, want %d, %d: %s", c.text, se.Line, se.Column, c.line, c.column, domain.MessageOf(err))
			}
			if se.Offset < 0 || se.Offset > len(c.text) {
				t.Errorf("%q: offset %d out of range", c.text, se.Offset)
			}
			msg := domain.MessageOf(err)
			if !strings.HasPrefix(msg, "SQL92 filter ") || !strings.Contains(msg, fmt.Sprintf("column %d", c.column)) {
				t.Errorf("%q: client message %q does not name the column", c.text, msg)
			}
		})
	}
}

func TestSQL92ErrorMessage(t *testing.T) {
	_, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: "a >"})
	want := `SQL92 filter "a >": expected a value (a property, a literal or '(') at column 4, found the end of the expression`
	if got := domain.MessageOf(err); got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	_, err = filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: "NOT a > 1"})
	if got := domain.MessageOf(err); !strings.Contains(got, "NOT (a > 1)") {
		t.Errorf("message %q lacks the hint", got)
	}
	long := strings.Repeat("x = 'é' OR ", 100) + ")"
	_, err = filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: long})
	if got := domain.MessageOf(err); len(got) > 300 {
		t.Errorf("message quotes too much: %d bytes", len(got))
	}
}

func TestSQL92Limits(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("(", n) + "a = 1" + strings.Repeat(")", n) }
	if _, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: deep(99)}); err != nil {
		t.Errorf("99 parentheses: %v", err)
	}
	for _, text := range []string{
		deep(101),
		strings.Repeat("(", 4000),
		strings.Repeat("NOT ", 101) + "a",
		strings.Repeat("-", 2000) + "1 = a",
		strings.Repeat("+", 4096),
	} {
		_, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: text})
		var se *filter.SyntaxError
		if !domain.HasReason(err, domain.ReasonIllegalFilterExpression) || !errors.As(err, &se) {
			t.Errorf("%.20q...: %v", text, err)
		}
	}
	// Long flat chains are fine: they do not nest.
	chain := "a = 1" + strings.Repeat(" OR a = 1", (filter.DefaultMaxExpressionLength-5)/9)
	if !compileSQL(t, chain).Match(props("a=1")) {
		t.Error("long OR chain does not match")
	}
}

func TestSQL92ExpressionRoundTrip(t *testing.T) {
	for _, text := range []string{"a = 1", "  a > 5 AND b IN ('x','y') OR TAGS = 'T'  ", "a = 1 trailing", "NOT a"} {
		f := compileSQL(t, text)
		e := f.Expression()
		if e.Type != filter.TypeSQL92 || e.Text != text {
			t.Errorf("Expression() = %+v, want the original text %q", e, text)
		}
		again := compileSQL(t, e.Text)
		for _, m := range []*domain.Message{props(), props("a=1"), props("a=6", "b=y"), {Tag: "T"}} {
			if f.Match(m) != again.Match(m) {
				t.Errorf("%q: recompiled filter disagrees on %+v", text, m)
			}
		}
	}
}

func ExampleCompile_sql92() {
	f, err := filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: "a > 5 AND b IN ('x','y') OR TAGS = 'T'"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Match(&domain.Message{Properties: map[string]string{"a": "7", "b": "y"}}))
	fmt.Println(f.Match(&domain.Message{Properties: map[string]string{"a": "7", "b": "z"}}))
	fmt.Println(f.Match(&domain.Message{Tag: "T"}))
	fmt.Println(f.Match(&domain.Message{Tag: "T", Properties: map[string]string{"a": "7.5"}})) // Integer.parseInt fails upstream

	_, err = filter.Compile(filter.Expression{Type: filter.TypeSQL92, Text: "a >"})
	fmt.Println(domain.MessageOf(err))
	// Output:
	// true
	// false
	// true
	// false
	// SQL92 filter "a >": expected a value (a property, a literal or '(') at column 4, found the end of the expression
}
