package filter

// SQL92 property filters, evaluated as RocketMQ brokers evaluate them.
//
// Reference: apache/rocketmq at tag rocketmq-all-5.3.3 (commit
// 29d90a4ff96c04c094039685a6106870c58a7e40; the filter module is unchanged
// in substance since 5.3.1 and up to master in September 2025). Paths below
// are relative to filter/src/main/java/org/apache/rocketmq/filter/ unless
// they name another module. The behaviour was checked against the
// rocketmq-filter 5.3.3 jar: see testdata/sql92_vectors.json.
//
// # Lexical rules (parser/SelectorParser.jj lines 143-195)
//
//   - White space is space, tab, LF, CR and form feed only. Comments are
//     "/* ... */" and "-- ..." up to a line break; a "--" with no line break
//     after it is two minus signs.
//   - Keywords NOT AND OR BETWEEN IN TRUE FALSE NULL IS CONTAINS STARTSWITH
//     ENDSWITH are case-insensitive. There is no LIKE, no arithmetic and no
//     "!=".
//   - Identifiers (property names) are [A-Za-z_$][A-Za-z0-9_$]*, ASCII only,
//     and case-sensitive: "tags" is a user property, "TAGS" the tag.
//   - Strings are single-quoted; '' is a quote. There are no other escapes.
//   - Integers are 0 or [1-9][0-9]* with an optional l/L suffix: no hex, no
//     octal, so 012 is the two tokens 0 and 12 (and see "trailing input").
//     An integer is a Java Integer when it fits 32 bits, else a Long; past
//     64 bits it is an error (ConstantExpression.java lines 39-53).
//   - Floating point literals are 1.5, 1., .5, 1e5, 1.5E-3 (Java Double).
//     A literal that rounds to zero, such as 0.0, is rejected, because
//     upstream rejects values below Double.MIN_VALUE (ConstantExpression.java
//     lines 56-65); so is one that overflows.
//   - Numbers are unsigned; "-" is an operator, so -5 is "negate 5".
//
// # Grammar and precedence (SelectorParser.jj lines 200-558)
//
// From loosest to tightest: OR; AND; equality (=, <>, IS [NOT] NULL);
// comparison (>, >=, <, <=, [NOT] BETWEEN, [NOT] IN, [NOT] CONTAINS,
// [NOT] STARTSWITH, [NOT] ENDSWITH); prefix operators (NOT, -, +);
// literals, properties and parentheses. All binary operators associate to
// the left. Upstream's grammar is the JMS selector grammar, so NOT binds
// tighter than comparisons, unlike SQL: "NOT a = 1" is "(NOT a) = 1", and
// "NOT a > 1" is rejected. Write NOT (a = 1).
//
// After the selector, upstream's parser does not require the end of the text
// (SelectorParser.jj lines 200-212 have no <EOF>): whatever follows a
// complete expression is ignored as long as the next token is well formed
// and cannot continue the expression. So "a = 1 b = 2" is "a = 1", and so is
// "a = 012" (0, then 12). Only that next token is read: "a = 1 #" is an
// error, "a = 1 x #" is not. Compile reproduces this; it is the same text
// that the broker would accept.
//
// # Checks when compiling (ComparisonExpression.java lines 456-497,
// SelectorParser.java lines 86-94)
//
//   - The whole expression, and each operand of AND, OR and NOT, must be a
//     condition or a bare property ("a AND b" is valid; "1 AND b" is not).
//   - >, >=, <, <= and BETWEEN take numbers or properties (or a negation);
//     a string, boolean or NULL literal, or a condition, is an error.
//   - = and <> reject a NULL literal (use IS NULL) and TRUE/FALSE on the left
//     of another literal that is not boolean ("TRUE = 1"; "1 = TRUE" is valid).
//   - BETWEEN with two literal bounds rejects NULL bounds and a lower bound
//     greater than the upper one ("a BETWEEN 5 AND 1"; NOT BETWEEN does not
//     check, and negative bounds such as -5 are not literals, so they are not
//     checked either).
//   - IN and NOT IN take a property on the left and string literals only.
//   - CONTAINS, STARTSWITH and ENDSWITH (and their NOT forms) take a string
//     literal on the right and anything on the left.
//
// Rmqproxy adds two bounds: MaxExpressionLength, and at most 100 levels of
// parentheses and prefix operators (upstream is bounded only by its stack).
//
// # Evaluation
//
// A message is seen as a map of string properties (broker module,
// filter/MessageEvaluationContext.java): the user properties plus the
// system properties the broker stores with the message. Rmqproxy derives
// these from [domain.Message] as the Apache proxy builds them
// (proxy module, SendMessageActivity.buildMessageProperty, lines 198-295):
//
//	TAGS                            Tag
//	KEYS                            Keys joined by a space
//	UNIQ_KEY                        ID
//	__SHARDINGKEY                   Group (FIFO message group)
//	TIMER_DELIVER_MS                DeliverAt, Unix milliseconds
//	CHECK_IMMUNITY_TIME_IN_SECONDS  TransactionRecovery, whole seconds, on transactional messages
//	RECONSUME_TIME                  ReconsumeTimes, always present ("0"), as the gRPC proxy sets it
//	TRACE_CONTEXT                   TraceContext
//	__BORNHOST                      BornHost
//	BORN_TIMESTAMP                  BornAt, Unix milliseconds
//
// A system property shadows a user property of the same name. Properties the
// broker adds on its own (CLUSTER, PGROUP, TRAN_MSG, which it clears on
// commit, REAL_TOPIC, MIN_OFFSET and so on) are not visible. An empty value
// is a missing property: the broker drops empty values when it decodes
// stored properties (common module, MessageDecoder.java lines 638-661).
//
// Values have Java classes: a property is a String, integer literals are
// Integer or Long, other numbers Double, TRUE and FALSE Boolean. A
// condition is TRUE, FALSE or NULL (unknown); a message matches only when
// the whole expression is TRUE. Exceptions thrown while evaluating abort the
// whole expression and the message does not match, even inside an OR whose
// other side is TRUE but comes later (broker module,
// ExpressionMessageFilter.java lines 145-159). The rules:
//
//   - A missing property is NULL. A bare property as a condition is NULL
//     when missing and FALSE otherwise (a String is never a Boolean), so
//     "NOT a" matches every message that has a.
//   - AND, OR and NOT use three-valued logic, evaluated left to right with
//     short circuit (LogicExpression.java lines 36-84, UnaryExpression.java
//     lines 154-170).
//   - = (doCreateEqual, ComparisonExpression.java lines 363-395): both sides
//     missing is TRUE; only the left missing is NULL; only the right
//     missing is FALSE; values of the same class are compared directly; a
//     String facing a number is parsed as that number's class and a parse
//     failure aborts; a String facing TRUE/FALSE is Boolean.valueOf
//     ("TRUE", "true" and "tRuE" are true, anything else false); TRUE or
//     FALSE facing a String aborts (a ClassCastException upstream); other
//     mixed classes are not equal. <> is NOT (=), IS NULL is (= NULL), IS
//     NOT NULL is NOT (= NULL).
//   - >, >=, <, <= (lines 499-527): NULL if a side is missing. Two
//     properties are both parsed as Double and a failure aborts. A property
//     facing an Integer literal is parsed with Integer.parseInt, facing a
//     Long with Long.parseLong, facing a Double with Double.valueOf; a
//     failure aborts. So "a > 5" aborts for a = "5.5" (use 5.0), for
//     a = " 5" and for a = "3000000000", while "a > 5.0" accepts all three.
//   - Integer.parseInt and Long.parseLong accept an optional sign and any
//     decimal digit of the Basic Multilingual Plane ("+7", "007", "１２").
//     Double.valueOf trims characters up to U+0020 and accepts "NaN",
//     "Infinity", hexadecimal ("0x1p4") and an f/d suffix ("1.5f").
//   - Doubles compare as Double.compare does: -0.0 < 0.0, and NaN is
//     greater than everything, +Infinity included, and equal to itself.
//   - Integer and Long compare as 64-bit integers; either against a Double
//     compares as doubles.
//   - BETWEEN x AND y is (>= x) AND (<= y); NOT BETWEEN is (< x) OR (> y),
//     so both are NULL for a missing property.
//   - IN compares strings exactly; NULL for a missing property, and NOT IN
//     as well (UnaryExpression.java lines 75-129).
//   - CONTAINS, STARTSWITH, ENDSWITH and their NOT forms are FALSE, never
//     NULL, for a missing property, a non-string operand or an empty
//     literal, so "a NOT CONTAINS 'x'" is FALSE when a is missing and
//     NOT (a CONTAINS 'x') is TRUE (ComparisonExpression.java lines 72-322).
//   - Unary minus negates numbers and yields NULL for anything else,
//     properties included: "-a = -5" is never true.
//
// Tricky cases, all checked against the upstream jar:
//
//	expression              properties       result
//	a = 5                   a="05"           TRUE (Integer.parseInt)
//	a = 5                   a="5.0"          no match, aborted
//	a = 5.0                 a="5"            TRUE
//	a > 5                   a="5.5"          no match, aborted: use a > 5.0
//	a > 5 OR TAGS = 'T'     a="x", TAGS="T"  no match, the left side aborted
//	TAGS = 'T' OR a > 5     a="x", TAGS="T"  TRUE, short circuit
//	a > b                   a="10", b="9"    TRUE (both parsed as Double)
//	a = b                   neither present  TRUE
//	a <> b                  only a present   TRUE (a = b is FALSE)
//	a <> b                  only b present   NULL, no match
//	a = TRUE                a="True"         TRUE
//	TRUE = a                a="true"         no match, aborted
//	NOT a = 1               a="1"            FALSE: (NOT a) = 1
//	NOT a                   a="x"            TRUE
//	a NOT IN ('x')          a missing        NULL, no match
//	a NOT CONTAINS 'x'      a missing        FALSE
//	a CONTAINS ''           a="x"            FALSE
//	a > 1.0                 a="NaN"          TRUE
//	a = 1 b = 2             a="1"            TRUE, "b = 2" is ignored
//	a = 0.0                 -                compile error
//	NOT a > 1               -                compile error

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rmqproxy/rmqproxy/domain"
)

// sqlFilter is a compiled SQL92 expression.
type sqlFilter struct {
	root node
	text string
}

func compileSQL92(text string) (Filter, error) {
	root, err := parseSQL92(text)
	if err != nil {
		return nil, domain.Wrap(domain.ReasonIllegalFilterExpression, err,
			fmt.Sprintf("SQL92 filter %s: %s", quoteSnippet(text), err.describe()))
	}
	return &sqlFilter{root: root, text: text}, nil
}

// Match reports whether the expression is TRUE for m. It does not
// allocate, except to format a few system properties (KEYS with several
// keys, the timestamps and RECONSUME_TIME above 99).
func (f *sqlFilter) Match(m *domain.Message) bool {
	return f.root.eval(m).isTrue()
}

func (f *sqlFilter) Expression() Expression { return Expression{Type: TypeSQL92, Text: f.text} }

// SyntaxError locates what is wrong in a SQL92 filter expression. Compile
// returns it as the cause of a ReasonIllegalFilterExpression domain error,
// whose message repeats the position for clients; get it with errors.As.
type SyntaxError struct {
	// Offset is the byte offset of the offending token in the expression.
	Offset int
	// Line and Column (1-based, Column counting characters) locate it for
	// people.
	Line, Column int
	// Msg says what was expected or what is wrong.
	Msg string
	// Found describes the token found instead, when that helps.
	Found string
	// Hint suggests a fix, if there is an obvious one.
	Hint string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("SQL92 syntax error at byte offset %d", e.Offset)
}

// describe is the client-facing text: what, where, and what was found.
func (e *SyntaxError) describe() string {
	at := fmt.Sprintf("column %d", e.Column)
	if e.Line > 1 {
		at = fmt.Sprintf("line %d, column %d", e.Line, e.Column)
	}
	s := e.Msg + " at " + at
	if e.Found != "" {
		s += ", found " + e.Found
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

func newSyntaxError(src string, pos int, msg string) *SyntaxError {
	line, col := 1, 1
	for i := 0; i < pos && i < len(src); {
		r, size := utf8.DecodeRuneInString(src[i:])
		i += size
		switch {
		case r == '\n', r == '\r' && (i >= len(src) || src[i] != '\n'):
			line, col = line+1, 1
		case r == '\r': // the CR of a CRLF
		default:
			col++
		}
	}
	return &SyntaxError{Offset: pos, Line: line, Column: col, Msg: msg}
}

// maxSnippet bounds how much of an expression an error message quotes.
const maxSnippet = 60

// quoteSnippet quotes s, shortened to maxSnippet bytes on a character
// boundary.
func quoteSnippet(s string) string {
	if len(s) <= maxSnippet {
		return fmt.Sprintf("%q", s)
	}
	cut := maxSnippet
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", strings.ToValidUTF8(s[:cut], "\uFFFD"))
}
