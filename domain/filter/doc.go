// Package filter compiles the subscription filter expressions of RocketMQ
// consumers and matches messages against them.
//
// Tag expressions are "*" (or empty, or white space only) for every
// message, or tags joined by "||" ("a||b"). Each tag is trimmed as Java's
// String.trim trims it (characters up to U+0020 only, see [TrimTag]), as
// the Apache proxy and broker do, and a message matches when its tag is one
// of them exactly (case-sensitive). An expression of separators and white
// space that names no tag ("||", " || ") is refused.
//
// SQL92 expressions are RocketMQ's property filters ("a > 5 AND b IN
// ('x','y') OR TAGS = 'T'"). They are parsed and evaluated as the Apache
// broker's filter module does it, quirks included, so that a consumer
// receives the same messages through rmqproxy as from a RocketMQ broker. The
// rules below are upstream's (apache/rocketmq, rocketmq-all-5.3.3; sql92.go
// maps each to its source) and were checked against the rocketmq-filter
// 5.3.3 jar (testdata/sql92_vectors.json).
//
// The package does not decide which messages a consumer may read, nor does
// it validate message properties; it reads a [domain.Message] as it is.
//
// Compile returns a ReasonIllegalFilterExpression domain error for an
// expression it cannot use, naming the line and column of the problem for
// SQL92 (its cause is a *SyntaxError), and never panics on any input. A
// compiled [Filter] is immutable and safe for concurrent use; Match does not
// allocate for user properties and the tag.
//
// # SQL92: lexical rules
//
//   - White space is space, tab, LF, CR and form feed only. Comments are
//     "/* ... */" and "-- ..." up to a line break; a "--" with no line break
//     after it is two minus signs.
//   - Keywords are case-insensitive: NOT AND OR BETWEEN IN TRUE FALSE NULL
//     IS CONTAINS STARTSWITH ENDSWITH. There is no LIKE, no arithmetic, no
//     "!=" and no double-quoted string.
//   - Property names are [A-Za-z_$][A-Za-z0-9_$]*, ASCII only, and
//     case-sensitive: "tags" is a user property, "TAGS" the tag. A name that
//     starts with a keyword ("notes", "ins") is a name.
//   - Strings are single-quoted; a doubled quote is a quote. Nothing else is
//     an escape.
//   - Integers are 0 or [1-9][0-9]* with an optional l/L suffix; there are no
//     hexadecimal or octal integers. An integer is a Java Integer when it fits
//     32 bits, else a Long; one past 64 bits is an error.
//   - Other numbers are 1.5, 1., .5, 1e5, 1.5E-3 (a Java Double). One that
//     overflows, or rounds to zero, is an error: "0.0" is rejected (write 0).
//   - Numbers have no sign: -5 is "negate 5".
//
// # SQL92: grammar
//
// From loosest to tightest, all binary operators associating to the left:
//
//	OR
//	AND
//	=  <>  IS NULL  IS NOT NULL
//	>  >=  <  <=  [NOT] BETWEEN x AND y  [NOT] IN ('s', ...)  [NOT] CONTAINS 's'  [NOT] STARTSWITH 's'  [NOT] ENDSWITH 's'
//	NOT  -  +  (prefix)
//	literals, property names, ( ... )
//
// This is the JMS selector grammar, so NOT binds tighter than comparisons,
// unlike SQL: "NOT a = 1" means "(NOT a) = 1", and "NOT a > 1" is rejected.
// Write NOT (a = 1).
//
// Upstream does not require the end of the text after the expression:
// whatever follows a complete expression is ignored, provided the next token
// is well formed and cannot continue the expression. So "a = 1 b = 2" is
// "a = 1", and "a = 012" is "a = 0" (followed by 12). Only that one token is
// read: "a = 1 #" is an error, "a = 1 x #" is not. Compile accepts exactly
// what the broker accepts.
//
// Compile also rejects, as upstream does:
//
//   - an expression, or an operand of AND, OR or NOT, that is a literal other
//     than TRUE, FALSE or NULL, or a negation ("1 AND b", "NOT -a"); a bare
//     property is allowed ("a AND b");
//   - a string, TRUE, FALSE or NULL literal, or a condition, as an operand of
//     >, >=, <, <= or BETWEEN ("a > 'x'", "(a > 1) > 0");
//   - a NULL literal in = or <> (use IS NULL), and TRUE or FALSE left of a
//     literal that is not TRUE or FALSE ("TRUE = 1"; "1 = TRUE" is valid);
//   - BETWEEN with literal bounds that are NULL or out of order ("a BETWEEN 5
//     AND 1"); NOT BETWEEN does not check, nor does BETWEEN when a bound is a
//     negation such as -1, which is not a literal;
//   - IN or NOT IN with anything but a property on the left, or anything but
//     string literals in the list;
//   - CONTAINS, STARTSWITH, ENDSWITH (and NOT forms) with anything but a
//     string literal on the right (the left side may be anything);
//   - parentheses and prefix operators nested more than 100 deep (this bound
//     is rmqproxy's; the length of an expression is bounded by the caller,
//     see [DefaultMaxExpressionLength]).
//
// # SQL92: evaluation
//
// A message is a map of string properties: its user properties, and the
// system properties the broker stores with it, which rmqproxy derives from
// the [domain.Message] fields as the Apache proxy builds them:
//
//	TAGS                            Tag
//	KEYS                            Keys joined by a space
//	UNIQ_KEY                        ID
//	__SHARDINGKEY                   Group (FIFO message group)
//	TIMER_DELIVER_MS                DeliverAt, in Unix milliseconds
//	CHECK_IMMUNITY_TIME_IN_SECONDS  TransactionRecovery in whole seconds, for transactional messages
//	RECONSUME_TIME                  ReconsumeTimes, always present ("0"), as the gRPC proxy sets it
//	TRACE_CONTEXT                   TraceContext
//	__BORNHOST                      BornHost
//	BORN_TIMESTAMP                  BornAt, in Unix milliseconds
//	TRAN_MSG                        "true" for transactional messages
//	__transactionId__               ID, for transactional messages
//
// TRAN_MSG is the proxy's and __transactionId__ the broker's, and a
// RocketMQ 5.5.0 broker keeps both in a committed transactional message,
// where its filters read them. A system property hides a user property of
// the same name. Other properties a broker has (the producer group PGROUP,
// CLUSTER, MSG_REGION and TRACE_ON from its configuration, REAL_TOPIC,
// MIN_OFFSET and so on) are not visible, although a broker's filter sees
// PGROUP and CLUSTER (docs/compatibility.md, "Local mode"). An empty value
// is a missing property, because the broker drops empty values when it
// decodes stored properties.
//
// Values have Java classes: a property is a String, integer literals are
// Integer or Long, other numbers Double, TRUE and FALSE Boolean. A condition
// is TRUE, FALSE or NULL (unknown); a message matches only when the whole
// expression is TRUE. Where upstream throws an exception while evaluating
// (noted "aborts" below), the whole expression fails and the message does
// not match, even if a later OR operand is TRUE.
//
//   - A missing property is NULL. A bare property used as a condition is
//     NULL when missing and FALSE otherwise, so "NOT a" matches every
//     message that has a.
//   - AND, OR and NOT use three-valued logic, left to right, with short
//     circuit: FALSE AND x is FALSE and TRUE OR x is TRUE without
//     evaluating x.
//   - =: both sides missing is TRUE; only the left side missing is NULL; only
//     the right side missing is FALSE. Values of one class compare directly.
//     A String facing a number is parsed as that number's class and aborts
//     if it does not parse; facing TRUE or FALSE it is true when it equals
//     "true" ignoring case. TRUE or FALSE facing a String aborts. Other mixes
//     of classes are not equal. <> is NOT (=); IS NULL is (= NULL), so
//     NULL IS NULL is TRUE; IS NOT NULL is NOT (= NULL).
//   - >, >=, <, <=: NULL if either side is missing. Two Strings are both
//     parsed as Double and abort if either does not parse. A String facing an
//     Integer literal is parsed as an Integer, facing a Long as a Long, facing
//     a Double as a Double, and aborts if it does not parse: "a > 5" aborts
//     for "5.5", " 5" and "3000000000", where "a > 5.0" handles all three.
//   - Integer and Long parsing accepts an optional sign and the decimal
//     digits of any script in the Basic Multilingual Plane ("+7", "007",
//     "１２"), and no white space. Double parsing trims characters up to
//     U+0020 and accepts "NaN", "Infinity", hexadecimal ("0x1p4") and an
//     f or d suffix ("1.5f").
//   - Integers compare as integers, and as doubles against a Double. Doubles
//     compare as Double.compare does: -0.0 < 0.0, and NaN is greater than
//     +Infinity and equal to itself.
//   - BETWEEN x AND y is (>= x) AND (<= y); NOT BETWEEN is (< x) OR (> y).
//   - IN compares strings exactly; IN and NOT IN are NULL for a missing
//     property.
//   - CONTAINS, STARTSWITH, ENDSWITH and their NOT forms compare strings and
//     are never NULL: a missing property, an operand that is not a String and
//     an empty literal all give FALSE, for the NOT forms too.
//   - Unary minus negates numbers and is NULL for anything else, properties
//     included: "-a = -5" is never true.
//
// Tricky cases:
//
//	expression              properties        result
//	a = 5                   a="05"            TRUE
//	a = 5                   a="5.0"           no match, aborted
//	a = 5.0                 a="5"             TRUE
//	a > 5                   a="5.5"           no match, aborted: write a > 5.0
//	a > 5 OR TAGS = 'T'     a="x", tag T      no match: the left side aborted
//	TAGS = 'T' OR a > 5     a="x", tag T      TRUE: short circuit
//	a > b                   a="10", b="9"     TRUE: both parsed as Double
//	a = b                   neither           TRUE
//	a <> b                  only a            TRUE
//	a <> b                  only b            NULL: no match
//	a = TRUE                a="True"          TRUE
//	TRUE = a                a="true"          no match, aborted
//	NOT a = 1               a="1"             FALSE: (NOT a) = 1
//	NOT a                   a="x"             TRUE
//	a NOT IN ('x')          none              NULL: no match
//	a NOT CONTAINS 'x'      none              FALSE
//	NOT (a CONTAINS 'x')    none              TRUE
//	a CONTAINS ''           a="x"             FALSE
//	a > 1.0                 a="NaN"           TRUE
//	a = 1 b = 2             a="1"             TRUE: "b = 2" is ignored
//	a = 0.0                 -                 compile error
//	NOT a > 1               -                 compile error
package filter
