package client

import (
	"errors"
	"strconv"
)

// Kind says what failed in a call.
type Kind uint8

const (
	// KindDial: no connection could be made (or the address is in its
	// reconnect back-off). The request was not sent.
	KindDial Kind = iota + 1
	// KindTimeout: the context ended before the answer; the request may
	// have reached the peer.
	KindTimeout
	// KindCanceled: the context was cancelled before the answer.
	KindCanceled
	// KindConnection: the connection broke (peer closed it, sent a bad
	// frame, a write failed); the request may have reached the peer.
	KindConnection
	// KindClosed: the Client is closed.
	KindClosed
	// KindEncode: the request could not be encoded (e.g. a code too large
	// for a binary header). Not retryable.
	KindEncode
)

func (k Kind) String() string {
	switch k {
	case KindDial:
		return "dial"
	case KindTimeout:
		return "timeout"
	case KindCanceled:
		return "canceled"
	case KindConnection:
		return "connection"
	case KindClosed:
		return "closed"
	case KindEncode:
		return "encode"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a failed call. Callers decide with its behaviour, not its text:
// Retryable (another attempt, e.g. on another broker, may succeed) and
// MaybeDelivered (the peer may have received and acted on the request, so
// retrying a send may duplicate it).
type Error struct {
	Kind Kind
	Addr string
	Err  error
	// unsent is set by the client when it knows the request was not
	// queued for writing. The zero value says "maybe delivered", the safe
	// answer for a caller deciding whether a retry could duplicate the
	// request: an Error made elsewhere (a test, a wrapper) never claims a
	// request was not sent unless its Kind says so.
	unsent bool
}

func (e *Error) Error() string {
	s := "remoting " + e.Kind.String() + " " + e.Addr
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether another attempt may succeed.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindDial, KindTimeout, KindConnection:
		return true
	}
	return false
}

// MaybeDelivered reports whether the request may have reached the peer.
// It is false only when the client knows the request was never queued for
// writing: no connection (KindDial), no frame (KindEncode), or a call that
// ended (its context, the connection failing, Close) while it waited for
// a connection, an in-flight slot or room in the write queue. Once queued
// a request may be written at any moment, so every later failure (a
// timeout, a broken connection) reports true.
func (e *Error) MaybeDelivered() bool {
	switch e.Kind {
	case KindDial, KindEncode:
		return false
	}
	return !e.unsent
}

// Timeout reports whether the context's deadline ended the call.
func (e *Error) Timeout() bool { return e.Kind == KindTimeout }

// ErrClosed is wrapped by calls on a closed Client.
var ErrClosed = errors.New("client closed")

// errBackoff is wrapped while an address is in its reconnect back-off.
var errBackoff = errors.New("in reconnect back-off after a failed dial")
