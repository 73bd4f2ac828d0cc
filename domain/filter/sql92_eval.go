package filter

import (
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// node is a compiled SQL92 expression. eval returns vNull for SQL's
// "unknown", vBool for a condition and vAbort when upstream would throw.
// Nodes are immutable after Compile and eval does not allocate except where
// a property must be formatted (see sysProp.lookup).
type node interface {
	eval(m *domain.Message) value
}

// constNode is a literal (ConstantExpression upstream).
type constNode struct{ v value }

func (n *constNode) eval(*domain.Message) value { return n.v }

// propNode reads a message property (PropertyExpression); every property
// value is a String.
type propNode struct {
	name string
	sys  sysProp
}

func (n *propNode) eval(m *domain.Message) value {
	if m == nil {
		return nullValue
	}
	if s, ok := n.sys.lookup(m); ok {
		return value{kind: vString, s: s}
	}
	// The broker stores properties as name\x01value\x02 pairs and drops
	// pairs with an empty value when it decodes them
	// (MessageDecoder.string2messageProperties), so an empty property is NULL.
	if s := m.Properties[n.name]; s != "" {
		return value{kind: vString, s: s}
	}
	return nullValue
}

// negNode is unary minus (UnaryExpression.createNegate): it negates numbers
// keeping their class and yields NULL for anything else, including a
// property ("-a" is NULL even when a is "5").
type negNode struct{ x node }

func (n *negNode) eval(m *domain.Message) value {
	v := n.x.eval(m)
	switch v.kind {
	case vInt:
		return value{kind: vInt, i: int64(-int32(v.i))}
	case vLong:
		return value{kind: vLong, i: -v.i}
	case vDouble:
		return doubleValue(-v.f())
	case vAbort:
		return v
	}
	return nullValue
}

// boolCastNode lets a bare property stand where a condition is expected
// (UnaryExpression.createBooleanCast): NULL when the property is missing,
// FALSE otherwise, since a String is never a Boolean.
type boolCastNode struct{ x node }

func (n *boolCastNode) eval(m *domain.Message) value {
	v := n.x.eval(m)
	switch v.kind {
	case vNull, vAbort, vBool:
		return v
	}
	return falseValue
}

// notNode is NOT: it swaps TRUE and FALSE and keeps NULL.
type notNode struct{ x node }

func (n *notNode) eval(m *domain.Message) value {
	v := n.x.eval(m)
	if v.kind == vBool {
		return boolValue(v.i == 0)
	}
	return v
}

// andNode is a chain of AND, left to right (LogicExpression.createAND,
// which is associative, so a chain is flattened): the first FALSE wins,
// otherwise NULL if an operand was NULL, otherwise TRUE. Operands after the
// first FALSE are not evaluated, so they cannot abort.
type andNode struct{ xs []node }

func (n *andNode) eval(m *domain.Message) value {
	unknown := false
	for _, x := range n.xs {
		switch v := x.eval(m); {
		case v.kind == vAbort:
			return v
		case v.kind == vBool && v.i == 0:
			return falseValue
		case v.kind != vBool:
			unknown = true
		}
	}
	if unknown {
		return nullValue
	}
	return trueValue
}

// orNode is a chain of OR: the first TRUE wins, otherwise NULL if an operand
// was NULL, otherwise FALSE.
type orNode struct{ xs []node }

func (n *orNode) eval(m *domain.Message) value {
	unknown := false
	for _, x := range n.xs {
		switch v := x.eval(m); {
		case v.kind == vAbort:
			return v
		case v.isTrue():
			return trueValue
		case v.kind != vBool:
			unknown = true
		}
	}
	if unknown {
		return nullValue
	}
	return falseValue
}

// eqNode is '=' and IS NULL (ComparisonExpression.doCreateEqual). Both
// sides are evaluated first. Then: both NULL is TRUE; a NULL left side is
// NULL; a NULL right side is FALSE; equal values are TRUE; otherwise they
// are compared with javaCompare, which may convert a String or abort.
type eqNode struct{ l, r node }

func (n *eqNode) eval(m *domain.Message) value {
	l := n.l.eval(m)
	if l.kind == vAbort {
		return l
	}
	r := n.r.eval(m)
	if r.kind == vAbort {
		return r
	}
	switch {
	case l.kind == vNull && r.kind == vNull:
		return trueValue
	case l.kind == vNull:
		return nullValue
	case r.kind == vNull:
		return falseValue
	case javaEquals(l, r):
		return trueValue
	}
	c, ok := javaCompare(l, r)
	if !ok {
		return abortValue
	}
	return boolValue(c == 0)
}

type relOp uint8

const (
	relGT relOp = iota
	relGE
	relLT
	relLE
)

var relSymbols = [...]string{relGT: ">", relGE: ">=", relLT: "<", relLE: "<="}

// relNode is >, >=, < or <= (ComparisonExpression.evaluate): NULL if either
// side is NULL (the right side is not evaluated when the left is NULL); two
// Strings are both parsed with Double.valueOf and abort if either is not a
// number; anything else goes through javaCompare.
type relNode struct {
	op   relOp
	l, r node
}

func (n *relNode) eval(m *domain.Message) value {
	l := n.l.eval(m)
	if l.kind == vNull || l.kind == vAbort {
		return l
	}
	r := n.r.eval(m)
	if r.kind == vNull || r.kind == vAbort {
		return r
	}
	var c int
	if l.kind == vString && r.kind == vString {
		lf, ok1 := parseJavaDouble(l.s)
		rf, ok2 := parseJavaDouble(r.s)
		if !ok1 || !ok2 {
			return abortValue
		}
		c = javaCompareDouble(lf, rf)
	} else {
		var ok bool
		if c, ok = javaCompare(l, r); !ok {
			return abortValue
		}
	}
	switch n.op {
	case relGT:
		return boolValue(c > 0)
	case relGE:
		return boolValue(c >= 0)
	case relLT:
		return boolValue(c < 0)
	default:
		return boolValue(c <= 0)
	}
}

// inNode is [NOT] IN over string literals (UnaryExpression.createInExpression):
// NULL when the property is missing, then exact string membership.
type inNode struct {
	x    node
	list []string
	set  map[string]struct{} // for long lists
	not  bool
}

func (n *inNode) eval(m *domain.Message) value {
	v := n.x.eval(m)
	if v.kind != vString {
		if v.kind == vAbort {
			return v
		}
		return nullValue
	}
	found := false
	if n.set != nil {
		_, found = n.set[v.s]
	} else {
		for _, s := range n.list {
			if s == v.s {
				found = true
				break
			}
		}
	}
	return boolValue(found != n.not)
}

type strOp uint8

const (
	strContains strOp = iota
	strStartsWith
	strEndsWith
)

var strOpNames = [...]string{strContains: "CONTAINS", strStartsWith: "STARTSWITH", strEndsWith: "ENDSWITH"}

// strNode is [NOT] CONTAINS, STARTSWITH and ENDSWITH
// (ComparisonExpression.ContainsExpression and friends). Unlike every other
// operator they never yield NULL: an empty literal, a missing property and
// a non-String operand are all FALSE, for the NOT forms too.
type strNode struct {
	op  strOp
	not bool
	x   node
	lit string
}

func (n *strNode) eval(m *domain.Message) value {
	if n.lit == "" {
		return falseValue
	}
	v := n.x.eval(m)
	if v.kind != vString {
		if v.kind == vAbort {
			return v
		}
		return falseValue
	}
	var found bool
	switch n.op {
	case strContains:
		found = strings.Contains(v.s, n.lit)
	case strStartsWith:
		found = strings.HasPrefix(v.s, n.lit)
	default:
		found = strings.HasSuffix(v.s, n.lit)
	}
	return boolValue(found != n.not)
}

// sysProp names a system property that the broker keeps among a message's
// properties and that a SQL92 filter can therefore read. The Apache proxy
// builds them from a gRPC message in SendMessageActivity.buildMessageProperty
// (proxy module); rmqproxy derives them from the [domain.Message] fields.
type sysProp uint8

const (
	sysNone sysProp = iota
	sysTags
	sysKeys
	sysUniqKey
	sysShardingKey
	sysTimerDeliverMS
	sysCheckImmunity
	sysReconsumeTime
	sysTraceContext
	sysBornHost
	sysBornTimestamp
	sysTransactionPrepared
	sysTransactionID
)

// sysPropNames maps property names (MessageConst upstream) to system
// properties. Names are case-sensitive, as properties are.
var sysPropNames = map[string]sysProp{
	"TAGS":                           sysTags,
	"KEYS":                           sysKeys,
	"UNIQ_KEY":                       sysUniqKey,
	"__SHARDINGKEY":                  sysShardingKey,
	"TIMER_DELIVER_MS":               sysTimerDeliverMS,
	"CHECK_IMMUNITY_TIME_IN_SECONDS": sysCheckImmunity,
	"RECONSUME_TIME":                 sysReconsumeTime,
	"TRACE_CONTEXT":                  sysTraceContext,
	"__BORNHOST":                     sysBornHost,
	"BORN_TIMESTAMP":                 sysBornTimestamp,
	"TRAN_MSG":                       sysTransactionPrepared,
	"__transactionId__":              sysTransactionID,
}

// lookup returns the system property's value and whether the message has
// it; an empty value counts as absent, as it does on the broker. It
// allocates only for KEYS with several keys and for the numeric properties.
func (p sysProp) lookup(m *domain.Message) (string, bool) {
	var s string
	switch p {
	case sysNone:
		return "", false
	case sysTags:
		s = m.Tag
	case sysKeys:
		switch len(m.Keys) {
		case 0:
		case 1:
			s = m.Keys[0]
		default:
			s = strings.Join(m.Keys, " ") // MessageConst.KEY_SEPARATOR
		}
	case sysUniqKey:
		s = m.ID
	case sysShardingKey:
		s = m.Group
	case sysTimerDeliverMS:
		if !m.DeliverAt.IsZero() {
			s = strconv.FormatInt(m.DeliverAt.UnixMilli(), 10)
		}
	case sysCheckImmunity:
		if m.Transactional && m.TransactionRecovery > 0 {
			s = strconv.FormatInt(int64(m.TransactionRecovery/time.Second), 10) // Durations.toSeconds truncates
		}
	case sysReconsumeTime:
		s = strconv.FormatInt(int64(m.ReconsumeTimes), 10)
	case sysTraceContext:
		s = m.TraceContext
	case sysBornHost:
		s = m.BornHost
	case sysBornTimestamp:
		if !m.BornAt.IsZero() {
			s = strconv.FormatInt(m.BornAt.UnixMilli(), 10)
		}
	case sysTransactionPrepared:
		// The proxy writes TRAN_MSG=true on the half message, and a
		// RocketMQ 5.5.0 broker's commit keeps it in the message it
		// stores, although EndTransactionProcessor clears it from its
		// property map (seen through cluster mode:
		// TestSQL92FiltersSeeTransactionProperties in test/e2e).
		if m.Transactional {
			s = "true"
		}
	case sysTransactionID:
		// The broker copies the half message's UNIQ_KEY into
		// __transactionId__ (TransactionalMessageBridge.parseHalfMessageInner),
		// and the commit keeps it.
		if m.Transactional {
			s = m.ID
		}
	}
	return s, s != ""
}
