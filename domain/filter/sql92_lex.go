package filter

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokKind is a token of the SQL92 filter language. The set and the lexical
// rules are those of SelectorParser.jj (apache/rocketmq, filter module,
// lines 139-195 at rocketmq-all-5.3.3): keywords, four literal kinds, ASCII
// identifiers and eleven operator strings.
type tokKind uint8

const (
	tEOF tokKind = iota
	tNot
	tAnd
	tOr
	tBetween
	tIn
	tTrue
	tFalse
	tNull
	tIs
	tContains
	tStartsWith
	tEndsWith
	tDecimal // 0 | [1-9][0-9]*[lL]?
	tFloat   // 1.5, 1., .5, 1e5, 1.5E-3
	tString  // 'it''s'
	tIdent   // [A-Za-z_$][A-Za-z0-9_$]*
	tEq      // =
	tNe      // <>
	tGt      // >
	tGe      // >=
	tLt      // <
	tLe      // <=
	tLParen
	tComma
	tRParen
	tPlus
	tMinus
)

var tokNames = [...]string{
	tEOF: "end of expression", tNot: "NOT", tAnd: "AND", tOr: "OR", tBetween: "BETWEEN",
	tIn: "IN", tTrue: "TRUE", tFalse: "FALSE", tNull: "NULL", tIs: "IS", tContains: "CONTAINS",
	tStartsWith: "STARTSWITH", tEndsWith: "ENDSWITH", tDecimal: "integer", tFloat: "number",
	tString: "string", tIdent: "property", tEq: "'='", tNe: "'<>'", tGt: "'>'", tGe: "'>='",
	tLt: "'<'", tLe: "'<='", tLParen: "'('", tComma: "','", tRParen: "')'", tPlus: "'+'", tMinus: "'-'",
}

// keywords are matched case-insensitively; a longer identifier ("NOTE",
// "INX") is an identifier, as JavaCC's longest match makes it.
var keywords = []struct {
	word string
	kind tokKind
}{
	{"NOT", tNot}, {"AND", tAnd}, {"OR", tOr}, {"BETWEEN", tBetween}, {"IN", tIn},
	{"TRUE", tTrue}, {"FALSE", tFalse}, {"NULL", tNull}, {"IS", tIs},
	{"CONTAINS", tContains}, {"STARTSWITH", tStartsWith}, {"ENDSWITH", tEndsWith},
}

// token is a lexeme of the source text, src[pos:end].
type token struct {
	kind     tokKind
	pos, end int
}

// lexer splits a filter expression into tokens on demand. Like the JavaCC
// token manager upstream it is lazy: text after the last token the parser
// looks at is never examined, so an error there goes unnoticed (see the
// trailing-input rule in sql92.go).
type lexer struct {
	src string
	pos int
}

// next returns the next token, skipping white space and comments.
func (l *lexer) next() (token, *SyntaxError) {
	if err := l.skip(); err != nil {
		return token{}, err
	}
	s, start := l.src, l.pos
	if start >= len(s) {
		return token{kind: tEOF, pos: start, end: start}, nil
	}
	tok := func(k tokKind, n int) (token, *SyntaxError) {
		l.pos = start + n
		return token{kind: k, pos: start, end: start + n}, nil
	}
	c := s[start]
	switch {
	case c == '\'':
		n := stringLen(s[start:])
		if n == 0 {
			err := l.errorAt(start, "unterminated string literal")
			err.Hint = "close it with a quote, and double any quote inside it"
			return token{}, err
		}
		return tok(tString, n)
	case isDigit(c) || c == '.':
		k, n := numberLen(s[start:])
		if n == 0 {
			return token{}, l.errorAt(start, "unexpected character '.'")
		}
		return tok(k, n)
	case isIdentStart(c):
		n := 1
		for n < len(s[start:]) && isIdentPart(s[start+n]) {
			n++
		}
		word := s[start : start+n]
		for _, kw := range keywords {
			if strings.EqualFold(word, kw.word) {
				return tok(kw.kind, n)
			}
		}
		return tok(tIdent, n)
	}
	two := ""
	if start+1 < len(s) {
		two = s[start : start+2]
	}
	switch {
	case two == "<>":
		return tok(tNe, 2)
	case two == ">=":
		return tok(tGe, 2)
	case two == "<=":
		return tok(tLe, 2)
	}
	switch c {
	case '=':
		return tok(tEq, 1)
	case '>':
		return tok(tGt, 1)
	case '<':
		return tok(tLt, 1)
	case '(':
		return tok(tLParen, 1)
	case ')':
		return tok(tRParen, 1)
	case ',':
		return tok(tComma, 1)
	case '+':
		return tok(tPlus, 1)
	case '-':
		return tok(tMinus, 1)
	case '/':
		if strings.HasPrefix(s[start:], "/*") {
			err := l.errorAt(start, "unterminated comment")
			err.Hint = "close it with */"
			return token{}, err
		}
	}
	r, _ := utf8.DecodeRuneInString(s[start:])
	if r == utf8.RuneError {
		return token{}, l.errorAt(start, fmt.Sprintf("unexpected byte 0x%02x", c))
	}
	return token{}, l.errorAt(start, fmt.Sprintf("unexpected character %q", r))
}

// skip passes white space (only space, tab, LF, CR and FF), line comments
// and block comments. A "--" comment counts only when a line break ends
// it: upstream's LINE_COMMENT requires the break, so at the end of the text
// "--5" lexes as two minus signs and a 5.
func (l *lexer) skip() *SyntaxError {
	s := l.src
	for l.pos < len(s) {
		switch c := s[l.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			l.pos++
		case strings.HasPrefix(s[l.pos:], "--"):
			i := strings.IndexAny(s[l.pos+2:], "\r\n")
			if i < 0 {
				return nil // "-" "-" tokens
			}
			l.pos += 2 + i + 1
		case strings.HasPrefix(s[l.pos:], "/*"):
			i := strings.Index(s[l.pos+2:], "*/")
			if i < 0 {
				return nil // reported by next as an unterminated comment
			}
			l.pos += 2 + i + 2
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) errorAt(pos int, msg string) *SyntaxError {
	return newSyntaxError(l.src, pos, msg)
}

// stringLen returns the length of the string literal at the start of s
// (which begins with a quote), or 0 when it is not terminated. Inside, a
// doubled quote stands for one quote. JavaCC takes the longest match, so
// when the text ends inside a literal that contains a doubled quote, the
// literal ends at the first quote of the last such pair: the text
// 'a, two quotes, b lexes as the literal 'a' followed by an unterminated
// literal.
func stringLen(s string) int {
	last := 0
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			last = i + 1 // the literal may end here ...
			i++          // ... or continue past the escaped quote
			continue
		}
		return i + 1
	}
	return last
}

// unquote decodes a string literal token: drop the outer quotes and turn
// each doubled quote into one.
func unquote(lit string) string {
	body := lit[1 : len(lit)-1]
	if !strings.Contains(body, "''") {
		return body
	}
	return strings.ReplaceAll(body, "''", "'")
}

// numberLen returns the kind and length of the longest numeric literal at the
// start of s, or 0 when there is none (a lone '.'). DECIMAL_LITERAL is
// "0" or [1-9][0-9]* with an optional l/L suffix, so "012" is the two
// literals 0 and 12 and "0L" is 0 followed by the identifier L;
// FLOATING_POINT_LITERAL is digits "." digits? exponent?, "." digits
// exponent? or digits exponent.
func numberLen(s string) (tokKind, int) {
	digits := func(i int) int {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return j - i
	}
	exponent := func(i int) int {
		if i >= len(s) || (s[i] != 'e' && s[i] != 'E') {
			return 0
		}
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if d := digits(j); d > 0 {
			return j + d - i
		}
		return 0
	}
	decimal := 0
	if s[0] == '0' {
		decimal = 1
	} else if isDigit(s[0]) {
		decimal = digits(0)
		if decimal < len(s) && (s[decimal] == 'l' || s[decimal] == 'L') {
			decimal++
		}
	}
	float := 0
	if lead := digits(0); lead > 0 {
		if lead < len(s) && s[lead] == '.' {
			i := lead + 1
			i += digits(i)
			float = i + exponent(i)
		} else if e := exponent(lead); e > 0 {
			float = lead + e
		}
	} else if s[0] == '.' {
		if d := digits(1); d > 0 {
			float = 1 + d + exponent(1+d)
		}
	}
	if float > decimal {
		return tFloat, float
	}
	return tDecimal, decimal
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == '$' || ('a' <= c|0x20 && c|0x20 <= 'z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }
