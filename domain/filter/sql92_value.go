package filter

import (
	"cmp"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// kind is the Java class of a value during evaluation upstream: property
// values are String, integer literals Integer or Long, floating point
// literals Double, and comparisons Boolean. vAbort stands for an exception
// thrown while evaluating, which upstream turns into "no match" for the whole
// expression (ExpressionMessageFilter.isMatchedByCommitLog catches it).
type kind uint8

const (
	vNull   kind = iota
	vBool        // java.lang.Boolean; i is 0 or 1
	vInt         // java.lang.Integer; i holds an int32
	vLong        // java.lang.Long
	vDouble      // java.lang.Double
	vString      // java.lang.String
	vAbort       // an exception: evaluation stops and the message does not match
)

// value is one evaluated operand. It is passed by value so that Match does
// not allocate, and kept small because every node returns one: i holds the
// integer, or the bits of the double.
type value struct {
	kind kind
	s    string
	i    int64
}

func doubleValue(f float64) value { return value{kind: vDouble, i: int64(math.Float64bits(f))} }

// f returns a vDouble's number.
func (v value) f() float64 { return math.Float64frombits(uint64(v.i)) }

var (
	nullValue  = value{}
	trueValue  = value{kind: vBool, i: 1}
	falseValue = value{kind: vBool}
	abortValue = value{kind: vAbort}
)

func boolValue(b bool) value {
	if b {
		return trueValue
	}
	return falseValue
}

func (v value) isTrue() bool { return v.kind == vBool && v.i != 0 }

func (v value) isNumber() bool { return v.kind == vInt || v.kind == vLong || v.kind == vDouble }

// String renders a constant as upstream's ConstantExpression.toString does;
// it is used in error messages only.
func (v value) String() string {
	switch v.kind {
	case vNull:
		return "NULL"
	case vBool:
		if v.i != 0 {
			return "TRUE"
		}
		return "FALSE"
	case vInt, vLong:
		return strconv.FormatInt(v.i, 10)
	case vDouble:
		return strconv.FormatFloat(v.f(), 'g', -1, 64)
	case vString:
		return "'" + strings.ReplaceAll(v.s, "'", "''") + "'"
	}
	return "?"
}

// javaEquals is Object.equals between two non-null values: same class and
// same value. Double.equals compares bit patterns, so NaN equals NaN and
// -0.0 differs from 0.0.
func javaEquals(l, r value) bool {
	if l.kind != r.kind {
		return false
	}
	switch l.kind {
	case vString:
		return l.s == r.s
	case vDouble:
		return javaDoubleBits(l.f()) == javaDoubleBits(r.f())
	default:
		return l.i == r.i
	}
}

// javaCompare is ComparisonExpression.__compare with string conversion on
// (upstream always parses with CONVERT_STRING_EXPRESSIONS set, see
// SelectorParser.parse). Values of different classes are converted up: Integer
// to Long to Double; a String facing a number is parsed as that number's class
// (Integer.valueOf, Long.valueOf or Double.valueOf), and facing a Boolean as
// Boolean.valueOf. A failed parse throws upstream: ok is false. Pairs it
// cannot convert compare as -1 (never equal); a Boolean facing a String
// throws a ClassCastException upstream (ComparisonExpression.java lines
// 537-542 cast the Boolean to String): ok is false as well.
func javaCompare(l, r value) (c int, ok bool) {
	if l.kind != r.kind {
		switch l.kind {
		case vBool:
			if r.kind == vString {
				return 0, false
			}
			return -1, true
		case vInt, vLong:
			switch r.kind {
			case vInt, vLong:
				return cmp.Compare(l.i, r.i), true
			case vDouble:
				return javaCompareDouble(float64(l.i), r.f()), true
			case vString:
				n, ok := parseJavaInt(r.s, l.kind)
				if !ok {
					return 0, false
				}
				return cmp.Compare(l.i, n), true
			}
			return -1, true
		case vDouble:
			switch r.kind {
			case vInt, vLong:
				return javaCompareDouble(l.f(), float64(r.i)), true
			case vString:
				f, ok := parseJavaDouble(r.s)
				if !ok {
					return 0, false
				}
				return javaCompareDouble(l.f(), f), true
			}
			return -1, true
		case vString:
			switch r.kind {
			case vBool:
				return cmp.Compare(boolInt(strings.EqualFold(l.s, "true")), r.i), true
			case vInt, vLong:
				n, ok := parseJavaInt(l.s, r.kind)
				if !ok {
					return 0, false
				}
				return cmp.Compare(n, r.i), true
			case vDouble:
				f, ok := parseJavaDouble(l.s)
				if !ok {
					return 0, false
				}
				return javaCompareDouble(f, r.f()), true
			}
			return -1, true
		}
		return -1, true
	}
	switch l.kind {
	case vString:
		return strings.Compare(l.s, r.s), true
	case vDouble:
		return javaCompareDouble(l.f(), r.f()), true
	default:
		return cmp.Compare(l.i, r.i), true
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// javaDoubleBits is Double.doubleToLongBits: every NaN has one pattern.
func javaDoubleBits(f float64) int64 {
	if f != f {
		return 0x7ff8000000000000
	}
	return int64(math.Float64bits(f))
}

// javaCompareDouble is Double.compare: a total order in which -0.0 < 0.0
// and NaN is above +Infinity and equal to itself.
func javaCompareDouble(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return cmp.Compare(javaDoubleBits(a), javaDoubleBits(b))
}

// parseJavaInt is Integer.parseInt (k == vInt) or Long.parseLong (k ==
// vLong) in radix 10: an optional sign, then at least one digit, with no
// white space, range-checked. Like Character.digit it accepts every
// decimal digit of the Basic Multilingual Plane ("１２" is 12, "٣" is 3),
// but not supplementary ones, which Java sees as two surrogate chars.
func parseJavaInt(s string, k kind) (int64, bool) {
	limit := uint64(math.MaxInt32)
	if k == vLong {
		limit = math.MaxInt64
	}
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
		if neg {
			limit++
		}
	}
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); {
		d, size := digitAt(s, i)
		if d < 0 {
			return 0, false
		}
		i += size
		if n > (limit-uint64(d))/10 {
			return 0, false
		}
		n = n*10 + uint64(d)
	}
	if neg {
		return -int64(n), true // for n == 1<<63 this wraps to MinInt64, as intended
	}
	return int64(n), true
}

// digitAt returns the decimal digit value of the character at s[i] and its
// length in bytes, or -1.
func digitAt(s string, i int) (int, int) {
	c := s[i]
	if c < 0x80 {
		if isDigit(c) {
			return int(c - '0'), 1
		}
		return -1, 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	return bmpDigit(r), size
}

// bmpDigit returns the value of a decimal digit (Unicode category Nd) in the
// Basic Multilingual Plane, or -1. Every run of Nd characters there starts at
// a zero and is a whole number of ten-digit sets (checked by a test).
func bmpDigit(r rune) int {
	if r > 0xFFFF {
		return -1
	}
	for _, rg := range unicode.Nd.R16 {
		if rune(rg.Lo) <= r && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10
		}
	}
	return -1
}

// parseJavaDouble is Double.valueOf: leading and trailing characters up to
// U+0020 are trimmed; then an optional sign and "NaN", "Infinity", a decimal
// number (digits with an optional point and exponent, at least one digit) or
// a hexadecimal one with a binary exponent ("0x1.8p3"), either optionally
// followed by one of f, F, d or D. Out-of-range values become ±Infinity or
// zero, as in Java.
func parseJavaDouble(s string) (float64, bool) {
	for s != "" && s[0] <= ' ' {
		s = s[1:]
	}
	for s != "" && s[len(s)-1] <= ' ' {
		s = s[:len(s)-1]
	}
	i := 0
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		i = 1
	}
	switch s[min(i, len(s)):] {
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		if neg {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	}
	num := s
	if n := len(s); n > i+1 {
		switch s[n-1] {
		case 'f', 'F', 'd', 'D':
			num = s[:n-1]
		}
	}
	if !javaFloatSyntax(num[i:]) {
		return 0, false
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// javaFloatSyntax checks the unsigned, suffix-free part of a Double.valueOf
// argument: decimal "1", "1.", ".5", "1.5e-3" or hexadecimal "0x1p3",
// "0x1.8P-2", "0x.8p1".
func javaFloatSyntax(s string) bool {
	hex := len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')
	if hex {
		s = s[2:]
	}
	isMantissaDigit := func(c byte) bool {
		if hex {
			return isDigit(c) || ('a' <= c|0x20 && c|0x20 <= 'f')
		}
		return isDigit(c)
	}
	i, digits := 0, 0
	for i < len(s) && isMantissaDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isMantissaDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	expChar := byte('e')
	if hex {
		expChar = 'p'
	}
	if i == len(s) {
		return !hex // a hexadecimal number needs its binary exponent
	}
	if s[i]|0x20 != expChar {
		return false
	}
	i++
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i > start && i == len(s)
}
