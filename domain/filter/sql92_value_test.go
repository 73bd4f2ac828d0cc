package filter

import (
	"math"
	"strconv"
	"testing"
	"unicode"
)

// TestJavaNumberParsing checks parseJavaInt and parseJavaDouble against
// Integer.parseInt, Long.parseLong and Double.valueOf. The expected columns
// were printed by Java 17 (OpenJDK 17.0.15) for these inputs; doubles are
// Double.doubleToRawLongBits in hexadecimal, ERR is a NumberFormatException.
func TestJavaNumberParsing(t *testing.T) {
	cases := []struct{ in, javaInt, javaLong, javaDouble string }{
		{"0", "0", "0", "0"},
		{"-0", "0", "0", "8000000000000000"},
		{"+7", "7", "7", "401c000000000000"},
		{"007", "7", "7", "401c000000000000"},
		{"2147483647", "2147483647", "2147483647", "41dfffffffc00000"},
		{"2147483648", "ERR", "2147483648", "41e0000000000000"},
		{"-2147483648", "-2147483648", "-2147483648", "c1e0000000000000"},
		{"-2147483649", "ERR", "-2147483649", "c1e0000000200000"},
		{"9223372036854775807", "ERR", "9223372036854775807", "43e0000000000000"},
		{"9223372036854775808", "ERR", "ERR", "43e0000000000000"},
		{"-9223372036854775808", "ERR", "-9223372036854775808", "c3e0000000000000"},
		{"", "ERR", "ERR", "ERR"},
		{"+", "ERR", "ERR", "ERR"},
		{"-", "ERR", "ERR", "ERR"},
		{" 5", "ERR", "ERR", "4014000000000000"},
		{"5 ", "ERR", "ERR", "4014000000000000"},
		{"1_000", "ERR", "ERR", "ERR"},
		{"１２", "12", "12", "ERR"},
		{"٣", "3", "3", "ERR"},
		{"१५", "15", "15", "ERR"},
		{"𝟓", "ERR", "ERR", "ERR"},
		{"Ⅴ", "ERR", "ERR", "ERR"},
		{"²", "ERR", "ERR", "ERR"},
		{"12a", "ERR", "ERR", "ERR"},
		{"1.5", "ERR", "ERR", "3ff8000000000000"},
		{"1.", "ERR", "ERR", "3ff0000000000000"},
		{".5", "ERR", "ERR", "3fe0000000000000"},
		{".", "ERR", "ERR", "ERR"},
		{"1e5", "ERR", "ERR", "40f86a0000000000"},
		{"1E-3", "ERR", "ERR", "3f50624dd2f1a9fc"},
		{"1e", "ERR", "ERR", "ERR"},
		{"1.5f", "ERR", "ERR", "3ff8000000000000"},
		{"1.5F", "ERR", "ERR", "3ff8000000000000"},
		{"2d", "ERR", "ERR", "4000000000000000"},
		{"2D", "ERR", "ERR", "4000000000000000"},
		{"f", "ERR", "ERR", "ERR"},
		{"NaN", "ERR", "ERR", "7ff8000000000000"},
		{"-NaN", "ERR", "ERR", "7ff8000000000000"},
		{"+Infinity", "ERR", "ERR", "7ff0000000000000"},
		{"-Infinity", "ERR", "ERR", "fff0000000000000"},
		{"Infinity", "ERR", "ERR", "7ff0000000000000"},
		{"infinity", "ERR", "ERR", "ERR"},
		{"nan", "ERR", "ERR", "ERR"},
		{"NaNd", "ERR", "ERR", "ERR"},
		{"0x10", "ERR", "ERR", "ERR"},
		{"0x10p0", "ERR", "ERR", "4030000000000000"},
		{"0X1.8P1", "ERR", "ERR", "4008000000000000"},
		{"0x.8p1", "ERR", "ERR", "3ff0000000000000"},
		{"0x1p-2d", "ERR", "ERR", "3fd0000000000000"},
		{"0x1.p1", "ERR", "ERR", "4000000000000000"},
		{"0xp1", "ERR", "ERR", "ERR"},
		{"0x1p", "ERR", "ERR", "ERR"},
		{"\t 5.5 \n", "ERR", "ERR", "4016000000000000"},
		{"1e400", "ERR", "ERR", "7ff0000000000000"},
		{"-1e400", "ERR", "ERR", "fff0000000000000"},
		{"1e-400", "ERR", "ERR", "0"},
		{"4.9e-324", "ERR", "ERR", "1"},
		{"1.7976931348623157E308", "ERR", "ERR", "7fefffffffffffff"},
		{"- 1", "ERR", "ERR", "ERR"},
		{"--1", "ERR", "ERR", "ERR"},
		{"1e+5", "ERR", "ERR", "40f86a0000000000"},
		{"1.5e-3D", "ERR", "ERR", "3f589374bc6a7efa"},
		{"0x1P+3F", "ERR", "ERR", "4020000000000000"},
		{"１.５", "ERR", "ERR", "ERR"},
		{"1,5", "ERR", "ERR", "ERR"},
		{"\u0000 5", "ERR", "ERR", "4014000000000000"},
	}
	for _, c := range cases {
		check := func(what string, got int64, ok bool, want string) {
			t.Helper()
			if !ok {
				if want != "ERR" {
					t.Errorf("%s(%q) failed, Java gives %s", what, c.in, want)
				}
				return
			}
			if s := strconv.FormatInt(got, 10); s != want {
				t.Errorf("%s(%q) = %s, Java gives %s", what, c.in, s, want)
			}
		}
		n, ok := parseJavaInt(c.in, vInt)
		check("Integer.parseInt", n, ok, c.javaInt)
		n, ok = parseJavaInt(c.in, vLong)
		check("Long.parseLong", n, ok, c.javaLong)
		f, ok := parseJavaDouble(c.in)
		switch {
		case !ok && c.javaDouble != "ERR":
			t.Errorf("Double.valueOf(%q) failed, Java gives %s", c.in, c.javaDouble)
		case ok && strconv.FormatUint(uint64(javaDoubleBits(f)), 16) != c.javaDouble:
			t.Errorf("Double.valueOf(%q) = %x, Java gives %s", c.in, uint64(javaDoubleBits(f)), c.javaDouble)
		}
	}
}

// TestBMPDigitRuns checks the assumption of bmpDigit: every run of decimal
// digits in the Basic Multilingual Plane starts at a zero and holds whole
// sets of ten.
func TestBMPDigitRuns(t *testing.T) {
	for _, rg := range unicode.Nd.R16 {
		if rg.Stride != 1 || (rg.Hi-rg.Lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U (stride %d) is not whole sets of ten", rg.Lo, rg.Hi, rg.Stride)
		}
	}
	for r, want := range map[rune]int{'0': 0, '9': 9, '٣': 3, '१': 1, '５': 5, 'a': -1, '²': -1, 'Ⅴ': -1, 0x1D7D3: -1} {
		if got := bmpDigit(r); got != want {
			t.Errorf("bmpDigit(%U) = %d, want %d", r, got, want)
		}
	}
}

func TestJavaCompareDouble(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	negZero := math.Copysign(0, -1)
	for _, c := range []struct {
		a, b float64
		want int
	}{
		{1, 2, -1}, {2, 1, 1}, {1, 1, 0},
		{negZero, 0, -1}, {0, negZero, 1}, {negZero, negZero, 0},
		{nan, inf, 1}, {inf, nan, -1}, {nan, nan, 0}, {nan, -inf, 1}, {-1, nan, -1},
	} {
		if got := javaCompareDouble(c.a, c.b); got != c.want {
			t.Errorf("compare(%v, %v) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestLexer(t *testing.T) {
	cases := []struct {
		src  string
		want []tokKind
	}{
		{"012", []tokKind{tDecimal, tDecimal}},
		{"0L", []tokKind{tDecimal, tIdent}},
		{"12L 12l", []tokKind{tDecimal, tDecimal}},
		{"1.5 1. .5 1e5 1E+5 1.5e-3", []tokKind{tFloat, tFloat, tFloat, tFloat, tFloat, tFloat}},
		{"1e 1e+", []tokKind{tDecimal, tIdent, tDecimal, tIdent, tPlus}},
		{"1.5L", []tokKind{tFloat, tIdent}},
		{"'a''b' 'it''s'''", []tokKind{tString, tString}},
		{"NOT NOTE not in INX", []tokKind{tNot, tIdent, tNot, tIn, tIdent}},
		{"<> <= >= < > = ( ) , + -", []tokKind{tNe, tLe, tGe, tLt, tGt, tEq, tLParen, tRParen, tComma, tPlus, tMinus}},
		{"-- c\n-/* c */-", []tokKind{tMinus, tMinus}},
		{"--x", []tokKind{tMinus, tMinus, tIdent}},
		{"a--\r\nb", []tokKind{tIdent, tIdent}},
	}
	for _, c := range cases {
		l := lexer{src: c.src}
		var got []tokKind
		for {
			tok, err := l.next()
			if err != nil {
				t.Fatalf("%q: %v", c.src, err)
			}
			if tok.kind == tEOF {
				break
			}
			got = append(got, tok.kind)
		}
		if len(got) != len(c.want) {
			t.Errorf("%q: tokens %v, want %v", c.src, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q: tokens %v, want %v", c.src, got, c.want)
				break
			}
		}
	}
	for _, c := range []struct{ lit, want string }{{"''", ""}, {"'a''b'", "a'b"}, {"''''", "'"}, {"'x'", "x"}} {
		if got := unquote(c.lit); got != c.want {
			t.Errorf("unquote(%s) = %q, want %q", c.lit, got, c.want)
		}
	}
}
