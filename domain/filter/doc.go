// Package filter compiles the subscription filter expressions of RocketMQ
// consumers and matches messages against them.
//
// Tag expressions are "*" (or empty) for every message, or tags joined by
// "||" ("a||b").
//
// SQL92 expressions are RocketMQ's property filters ("a > 5 AND b IN
// ('x','y') OR TAGS = 'T'"). They are parsed and evaluated exactly as the
// Apache broker's filter module does it, quirks included, so that a consumer
// receives the same messages through rmqproxy as from a RocketMQ broker:
// keywords are case-insensitive, property names are not; NOT binds tighter
// than comparisons; a missing property makes a comparison unknown, never
// true; a property value is compared as a number when the other side is one,
// and a value that does not parse makes the message not match. Text after a
// complete expression is ignored, as upstream ignores it. sql92.go documents
// every rule with its upstream source.
//
// The package does not decide which messages a consumer may read, nor does
// it validate message properties; it reads a [domain.Message] as it is.
//
// Compile returns a ReasonIllegalFilterExpression domain error for an
// expression it cannot use, with the column of the problem for SQL92
// (its cause is a *SyntaxError), and never panics on any input. A compiled
// [Filter] is immutable and safe for concurrent use; Match does not allocate
// for user properties and the tag.
package filter
