package filter

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxNesting bounds how deeply parentheses and prefix operators (NOT, -, +)
// may nest, so that parsing recursion is bounded; upstream is bounded only by
// the JVM stack.
const maxNesting = 100

// inSetThreshold is the list length from which IN uses a map.
const inSetThreshold = 8

// category is what upstream's parser checks about an operand: which
// Expression class it is (SelectorParser.jj, ComparisonExpression.java).
type category uint8

const (
	catConst     category = iota // string or numeric literal (ConstantExpression)
	catBoolConst                 // TRUE, FALSE or NULL (BooleanConstantExpression)
	catProp                      // property name (PropertyExpression)
	catNeg                       // unary minus (UnaryExpression, neither constant nor boolean)
	catBool                      // a condition (BooleanExpression)
)

// expr is a node during parsing, with what the upstream checks need.
type expr struct {
	n        node
	cat      category
	val      value // the constant, for catConst and catBoolConst
	pos, end int   // source span
}

type parser struct {
	src   string
	lex   lexer
	ahead [2]token // tokens read but not consumed: upstream looks two ahead at most
	n     int
	depth int
}

// parseSQL92 compiles src into an evaluation tree. The grammar and the checks
// are upstream's (SelectorParser.jj lines 200-558):
//
//	selector   = or                                  (must be a condition)
//	or         = and { OR and }
//	and        = equality { AND equality }
//	equality   = comparison { ("=" | "<>") comparison | IS NULL | IS NOT NULL }
//	comparison = unary { (">" | ">=" | "<" | "<=") unary
//	                   | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string
//	                   | [NOT] BETWEEN unary AND unary
//	                   | [NOT] IN "(" string { "," string } ")" }
//	unary      = "+" unary | "-" unary | NOT unary | primary
//	primary    = literal | property | "(" or ")"
//
// Nothing requires the end of the text after the selector (see the package
// documentation).
func parseSQL92(src string) (node, *SyntaxError) {
	p := &parser{src: src, lex: lexer{src: src}}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if e, err = p.asBool(e); err != nil {
		return nil, err
	}
	return e.n, nil
}

// peek returns the k-th token ahead (1-based), reading it if needed. A
// lexical error surfaces only when the parser looks at the token, as it does
// upstream.
func (p *parser) peek(k int) (token, *SyntaxError) {
	for p.n < k {
		t, err := p.lex.next()
		if err != nil {
			return token{}, err
		}
		p.ahead[p.n] = t
		p.n++
	}
	return p.ahead[k-1], nil
}

// advance consumes the next token, which must have been peeked.
func (p *parser) advance() token {
	t := p.ahead[0]
	copy(p.ahead[:], p.ahead[1:p.n])
	p.n--
	return t
}

// expect consumes a token of kind k or fails with what.
func (p *parser) expect(k tokKind, what string) (token, *SyntaxError) {
	t, err := p.peek(1)
	if err != nil {
		return t, err
	}
	if t.kind != k {
		return t, p.unexpected(t, what)
	}
	return p.advance(), nil
}

func (p *parser) or() (expr, *SyntaxError) {
	return p.logic(tOr, p.and)
}

func (p *parser) and() (expr, *SyntaxError) {
	return p.logic(tAnd, p.equality)
}

// logic parses a left-associative chain of AND or OR into one n-ary node;
// both operators are associative, including NULL and abort, so this
// evaluates exactly as upstream's nested binary nodes.
func (p *parser) logic(op tokKind, operand func() (expr, *SyntaxError)) (expr, *SyntaxError) {
	left, err := operand()
	if err != nil {
		return left, err
	}
	var xs []node
	for {
		t, err := p.peek(1)
		if err != nil {
			return left, err
		}
		if t.kind != op {
			break
		}
		p.advance()
		right, err := operand()
		if err != nil {
			return right, err
		}
		if xs == nil {
			l, err := p.asBool(left)
			if err != nil {
				return l, err
			}
			xs = append(xs, l.n)
		}
		r, err := p.asBool(right)
		if err != nil {
			return r, err
		}
		xs = append(xs, r.n)
		left.end = right.end
	}
	if xs == nil {
		return left, nil
	}
	var n node = &andNode{xs: xs}
	if op == tOr {
		n = &orNode{xs: xs}
	}
	return expr{n: n, cat: catBool, pos: left.pos, end: left.end}, nil
}

func (p *parser) equality() (expr, *SyntaxError) {
	left, err := p.comparison()
	if err != nil {
		return left, err
	}
	for {
		t, err := p.peek(1)
		if err != nil {
			return left, err
		}
		switch t.kind {
		case tEq, tNe:
			p.advance()
			right, err := p.comparison()
			if err != nil {
				return right, err
			}
			if left, err = p.equal(left, right, t); err != nil {
				return left, err
			}
			if t.kind == tNe {
				left.n = &notNode{x: left.n}
			}
		case tIs:
			t2, err := p.peek(2)
			if err != nil {
				return left, err
			}
			p.advance()
			not := t2.kind != tNull
			if not {
				if _, err := p.expect(tNot, "NULL or NOT NULL after IS"); err != nil {
					return left, err
				}
			}
			end, err := p.expect(tNull, "NULL")
			if err != nil {
				return left, err
			}
			// IS NULL is '=' against NULL without the operand checks
			// (ComparisonExpression.createIsNull).
			var n node = &eqNode{l: left.n, r: &constNode{v: nullValue}}
			if not {
				n = &notNode{x: n}
			}
			left = expr{n: n, cat: catBool, pos: left.pos, end: end.end}
		default:
			return left, nil
		}
	}
}

func (p *parser) comparison() (expr, *SyntaxError) {
	left, err := p.unary()
	if err != nil {
		return left, err
	}
	for {
		t, err := p.peek(1)
		if err != nil {
			return left, err
		}
		not := false
		op := t
		switch t.kind {
		case tGt, tGe, tLt, tLe:
			p.advance()
			right, err := p.unary()
			if err != nil {
				return right, err
			}
			if left, err = p.relation(relOp(t.kind-tGt), left, right, t); err != nil {
				return left, err
			}
			continue
		case tNot:
			// NOT here must start NOT CONTAINS/STARTSWITH/ENDSWITH/BETWEEN/IN;
			// upstream decides with two tokens of lookahead.
			t2, err := p.peek(2)
			if err != nil {
				return left, err
			}
			switch t2.kind {
			case tContains, tStartsWith, tEndsWith, tBetween, tIn:
			default:
				return left, p.unexpected(t2, "CONTAINS, STARTSWITH, ENDSWITH, BETWEEN or IN after NOT")
			}
			p.advance()
			not, op = true, t2
		case tContains, tStartsWith, tEndsWith, tBetween, tIn:
		default:
			return left, nil
		}
		p.advance()
		switch op.kind {
		case tContains, tStartsWith, tEndsWith:
			lit, err := p.expect(tString, "a string literal after "+tokNames[op.kind])
			if err != nil {
				return left, err
			}
			left = expr{
				n:   &strNode{op: strOp(op.kind - tContains), not: not, x: left.n, lit: unquote(p.src[lit.pos:lit.end])},
				cat: catBool, pos: left.pos, end: lit.end,
			}
		case tBetween:
			if left, err = p.between(left, op, not); err != nil {
				return left, err
			}
		case tIn:
			if left, err = p.in(left, not); err != nil {
				return left, err
			}
		}
	}
}

func (p *parser) between(value expr, op token, not bool) (expr, *SyntaxError) {
	low, err := p.unary()
	if err != nil {
		return low, err
	}
	if _, err := p.expect(tAnd, "AND between the bounds of BETWEEN"); err != nil {
		return low, err
	}
	high, err := p.unary()
	if err != nil {
		return high, err
	}
	span := expr{cat: catBool, pos: value.pos, end: high.end}
	if not {
		// ComparisonExpression.createNotBetween: value < low OR value > high.
		xs, bad, err := p.bounds(value, relLT, low, relGT, high, op)
		if err != nil {
			return bad, err
		}
		span.n = &orNode{xs: xs}
		return span, nil
	}
	// ComparisonExpression.createBetween rejects constant bounds that are
	// NULL or out of order, then builds value >= low AND value <= high.
	if isConst(low) && isConst(high) {
		if low.val.kind == vNull || high.val.kind == vNull {
			return span, p.errorAt(op.pos, "the bounds of BETWEEN cannot be NULL")
		}
		c, ok := javaCompare(high.val, low.val)
		if !ok {
			return span, p.errorAt(low.pos, fmt.Sprintf("the bounds of BETWEEN, %s and %s, cannot be compared", low.val, high.val))
		}
		if c < 0 {
			return span, p.errorAt(low.pos, fmt.Sprintf("the lower bound of BETWEEN, %s, is greater than the upper bound, %s", low.val, high.val))
		}
	}
	xs, bad, err := p.bounds(value, relGE, low, relLE, high, op)
	if err != nil {
		return bad, err
	}
	span.n = &andNode{xs: xs}
	return span, nil
}

// bounds builds the two comparisons of a BETWEEN, value rl low and value rh
// high; on an error it returns the operand at fault, as relation does.
func (p *parser) bounds(value expr, rl relOp, low expr, rh relOp, high expr, op token) ([]node, expr, *SyntaxError) {
	l, err := p.relation(rl, value, low, op)
	if err != nil {
		return nil, l, err
	}
	h, err := p.relation(rh, value, high, op)
	if err != nil {
		return nil, h, err
	}
	return []node{l.n, h.n}, expr{}, nil
}

func (p *parser) in(left expr, not bool) (expr, *SyntaxError) {
	if _, err := p.expect(tLParen, "'(' after IN"); err != nil {
		return left, err
	}
	var list []string
	for {
		lit, err := p.expect(tString, "a string literal in the IN list")
		if err != nil {
			return left, err
		}
		list = append(list, unquote(p.src[lit.pos:lit.end]))
		t, err := p.peek(1)
		if err != nil {
			return left, err
		}
		if t.kind != tComma {
			break
		}
		p.advance()
	}
	end, err := p.expect(tRParen, "',' or ')' in the IN list")
	if err != nil {
		return left, err
	}
	// ComparisonExpression.createInFilter: only a property may be tested.
	if left.cat != catProp {
		return left, p.errorAt(left.pos, fmt.Sprintf("IN tests a property, but its left side is %s", p.describe(left)))
	}
	n := &inNode{x: left.n, list: list, not: not}
	if len(list) >= inSetThreshold {
		n.set = make(map[string]struct{}, len(list))
		for _, s := range list {
			n.set[s] = struct{}{}
		}
		n.list = nil
	}
	return expr{n: n, cat: catBool, pos: left.pos, end: end.end}, nil
}

func (p *parser) unary() (expr, *SyntaxError) {
	t, err := p.peek(1)
	if err != nil {
		return expr{}, err
	}
	switch t.kind {
	case tPlus, tMinus, tNot:
	default:
		return p.primary()
	}
	if p.depth++; p.depth > maxNesting {
		return expr{}, p.errorAt(t.pos, fmt.Sprintf("the expression nests deeper than %d levels", maxNesting))
	}
	defer func() { p.depth-- }()
	p.advance()
	x, err := p.unary()
	if err != nil {
		return x, err
	}
	switch t.kind {
	case tPlus: // unary plus is dropped; the operand keeps its category
		x.pos = t.pos
		return x, nil
	case tMinus:
		return expr{n: &negNode{x: x.n}, cat: catNeg, pos: t.pos, end: x.end}, nil
	default:
		b, err := p.asBool(x)
		if err != nil {
			return b, err
		}
		return expr{n: &notNode{x: b.n}, cat: catBool, pos: t.pos, end: x.end}, nil
	}
}

func (p *parser) primary() (expr, *SyntaxError) {
	t, err := p.peek(1)
	if err != nil {
		return expr{}, err
	}
	lit := p.src[t.pos:t.end]
	e := expr{cat: catConst, pos: t.pos, end: t.end}
	switch t.kind {
	case tString:
		e.val = value{kind: vString, s: unquote(lit)}
	case tDecimal:
		// ConstantExpression.createFromDecimal: a long, narrowed to an
		// int when it fits; the l/L suffix changes nothing.
		n, err := strconv.ParseInt(strings.TrimRight(lit, "lL"), 10, 64)
		if err != nil {
			return e, p.errorAt(t.pos, fmt.Sprintf("integer %s is out of range (at most %d)", lit, int64(math.MaxInt64)))
		}
		e.val = value{kind: vLong, i: n}
		if n <= math.MaxInt32 {
			e.val.kind = vInt
		}
	case tFloat:
		// ConstantExpression.createFloat rejects infinity and anything below
		// Double.MIN_VALUE, which for an unsigned literal means zero.
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil && !math.IsInf(f, 0) {
			return e, p.errorAt(t.pos, fmt.Sprintf("malformed number %s", lit))
		}
		if math.IsInf(f, 0) {
			return e, p.errorAt(t.pos, fmt.Sprintf("number %s is too large for a double", lit))
		}
		if f == 0 {
			err := p.errorAt(t.pos, fmt.Sprintf("number %s is below 4.9E-324, the smallest number RocketMQ accepts with a decimal point", lit))
			err.Hint = "write 0 for zero"
			return e, err
		}
		e.val = doubleValue(f)
	case tTrue, tFalse, tNull:
		e.cat = catBoolConst
		switch t.kind {
		case tTrue:
			e.val = trueValue
		case tFalse:
			e.val = falseValue
		}
	case tIdent:
		p.advance()
		return expr{n: &propNode{name: lit, sys: sysPropNames[lit]}, cat: catProp, pos: t.pos, end: t.end}, nil
	case tLParen:
		if p.depth++; p.depth > maxNesting {
			return e, p.errorAt(t.pos, fmt.Sprintf("the expression nests deeper than %d levels", maxNesting))
		}
		defer func() { p.depth-- }()
		p.advance()
		inner, err := p.or()
		if err != nil {
			return inner, err
		}
		end, err := p.expect(tRParen, "')'")
		if err != nil {
			return inner, err
		}
		inner.pos, inner.end = t.pos, end.end
		return inner, nil
	default:
		return e, p.unexpected(t, "a value (a property, a literal or '(')")
	}
	p.advance()
	e.n = &constNode{v: e.val}
	return e, nil
}

// relation builds >, >=, < or <= after ComparisonExpression.checkLessThanOperand:
// a constant operand must be a number and a condition cannot be ordered.
func (p *parser) relation(op relOp, l, r expr, at token) (expr, *SyntaxError) {
	for _, x := range []expr{l, r} {
		switch {
		case isConst(x) && !x.val.isNumber():
			return x, p.errorAt(x.pos, fmt.Sprintf("%s cannot be compared with %s: only numbers and properties can be ordered", x.val, tokNames[at.kind]))
		case x.cat == catBool:
			err := p.errorAt(x.pos, fmt.Sprintf("the condition %s cannot be compared with %s", p.describe(x), tokNames[at.kind]))
			if _, ok := x.n.(*notNode); ok && x == l {
				err.Hint = "NOT binds tighter than comparisons: put the comparison in parentheses, as in NOT (a > 1)"
			}
			return x, err
		}
	}
	return expr{n: &relNode{op: op, l: l.n, r: r.n}, cat: catBool, pos: l.pos, end: r.end}, nil
}

// equal builds '=' after ComparisonExpression.checkEqualOperand (no NULL
// literal) and checkEqualOperandCompatability (TRUE or FALSE on the left of
// another literal that is not a boolean).
func (p *parser) equal(l, r expr, at token) (expr, *SyntaxError) {
	for _, x := range []expr{l, r} {
		if isConst(x) && x.val.kind == vNull {
			err := p.errorAt(x.pos, fmt.Sprintf("NULL cannot be compared with %s", tokNames[at.kind]))
			err.Hint = "use IS NULL"
			if at.kind == tNe {
				err.Hint = "use IS NOT NULL"
			}
			return x, err
		}
	}
	if isConst(l) && isConst(r) && l.cat == catBoolConst && r.cat != catBoolConst {
		return l, p.errorAt(l.pos, fmt.Sprintf("%s cannot be compared with %s", l.val, r.val))
	}
	return expr{n: &eqNode{l: l.n, r: r.n}, cat: catBool, pos: l.pos, end: r.end}, nil
}

// asBool is SelectorParser.asBooleanExpression: a condition stays, a bare
// property is cast, anything else is an error.
func (p *parser) asBool(e expr) (expr, *SyntaxError) {
	switch e.cat {
	case catBool, catBoolConst:
		return e, nil
	case catProp:
		return expr{n: &boolCastNode{x: e.n}, cat: catBool, pos: e.pos, end: e.end}, nil
	}
	return e, p.errorAt(e.pos, fmt.Sprintf("expected a condition, found %s", p.describe(e)))
}

func isConst(e expr) bool { return e.cat == catConst || e.cat == catBoolConst }

// describe quotes an operand's source text for an error message.
func (p *parser) describe(e expr) string {
	return quoteSnippet(p.src[e.pos:e.end])
}

func (p *parser) unexpected(t token, what string) *SyntaxError {
	err := p.errorAt(t.pos, "expected "+what)
	if t.kind == tEOF {
		err.Found = "the end of the expression"
	} else {
		err.Found = quoteSnippet(p.src[t.pos:t.end])
	}
	return err
}

func (p *parser) errorAt(pos int, msg string) *SyntaxError {
	return newSyntaxError(p.src, pos, msg)
}
