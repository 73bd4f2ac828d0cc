package filter

// SQL92 property filters, evaluated as RocketMQ brokers evaluate them. The
// rules are in the package documentation; this is where each comes from.
//
// Reference: apache/rocketmq at tag rocketmq-all-5.3.3 (commit
// 29d90a4ff96c04c094039685a6106870c58a7e40). The filter module has not
// changed in substance from 5.3.1 to master of September 2025. Paths are
// relative to filter/src/main/java/org/apache/rocketmq/filter/ unless they
// name another module; line numbers are at that tag.
//
//	rule                                   upstream                                                   here
//	tokens, comments, keywords, literals   parser/SelectorParser.jj 143-195                           sql92_lex.go
//	grammar and precedence                 parser/SelectorParser.jj 200-558                           parseSQL92
//	no end-of-text check                   parser/SelectorParser.jj 200-212 (no <EOF>)                parseSQL92
//	condition required (AND, OR, NOT, top) parser/SelectorParser.java 86-94 asBooleanExpression       parser.asBool
//	integer literals: Integer or Long      expression/ConstantExpression.java 39-54                   parser.primary
//	float literals: no zero, no infinity   expression/ConstantExpression.java 56-65                   parser.primary
//	ordering operand checks                expression/ComparisonExpression.java 456-472               parser.relation
//	equality operand checks                expression/ComparisonExpression.java 474-497               parser.equal
//	BETWEEN bound checks and expansion     expression/ComparisonExpression.java 48-70                 parser.between
//	IN needs a property                    expression/ComparisonExpression.java 324-342               parser.in
//	= and IS NULL, NULL handling           expression/ComparisonExpression.java 344-395               eqNode
//	>, >=, <, <=, strings as Double        expression/ComparisonExpression.java 499-527               relNode
//	class conversions in comparisons       expression/ComparisonExpression.java 529-652               javaCompare
//	CONTAINS, STARTSWITH, ENDSWITH         expression/ComparisonExpression.java 72-322                strNode
//	IN evaluation                          expression/UnaryExpression.java 75-140                     inNode
//	NOT, bare property as condition        expression/UnaryExpression.java 154-196                    notNode, boolCastNode
//	unary minus                            expression/UnaryExpression.java 54-73, 198-226             negNode
//	AND, OR                                expression/LogicExpression.java 36-85                      andNode, orNode
//	string conversion always on            parser/SelectorParser.java 45-65 (CONVERT_STRING_EXPRESSIONS) javaCompare
//	exception means no match               broker module, filter/ExpressionMessageFilter.java 143-159  vAbort
//	message as a property map              broker module, filter/MessageEvaluationContext.java        propNode
//	empty values dropped                   common module, message/MessageDecoder.java 638-661         propNode
//	system properties from a gRPC message  proxy module, grpc/v2/producer/SendMessageActivity.java 198-295 sysProp.lookup
//	TRAN_MSG, __transactionId__ kept       a 5.5.0 broker, seen through cluster mode (test/e2e)       sysProp.lookup
//
// Java library behaviour the rules depend on, reproduced in sql92_value.go:
// Integer.parseInt, Long.parseLong (Character.digit accepts every decimal
// digit of the Basic Multilingual Plane), Double.valueOf (trimming, NaN,
// Infinity, hexadecimal, f/d suffixes), Double.compare and Double.equals
// (bit patterns), Boolean.valueOf (equalsIgnoreCase "true").
//
// Strings are compared as bytes. For valid UTF-8 this gives the same
// equality, containment, prefix and suffix answers as Java's UTF-16
// comparisons, and string ordering is never observable: ordering operators
// parse strings as numbers first.

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
