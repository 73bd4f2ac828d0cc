// Package domain is the language of messaging shared by every part of rmqproxy:
// messages and their types, topics, consumer groups, receipt handles, message
// ids, validation rules and the typed [Error] every layer returns.
//
// It imports nothing but the standard library and knows no protocol: the gRPC
// and Remoting adapters translate their wire types into these values, and map
// [Error] reasons back to their own codes, each in exactly one place.
//
// Invariants callers rely on:
//   - every parser here (receipt handles, message ids, names) returns an
//     *Error for bad input and never panics;
//   - validation functions are pure and report the first rule that fails,
//     in the order the Apache RocketMQ proxy checks them.
package domain
