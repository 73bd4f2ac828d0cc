// Package filter compiles the subscription filter expressions of RocketMQ
// consumers and matches messages against them.
//
// Tag expressions are "*" (or empty) for every message, or tags joined by
// "||" ("a||b"). Compile returns a ReasonIllegalFilterExpression domain error
// for an expression it cannot use and never panics on any input; a compiled
// [Filter] is immutable and safe for concurrent use.
package filter
