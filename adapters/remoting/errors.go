package remoting

import (
	"errors"
	"strconv"
)

// FrameError says why a frame or its header could not be decoded or
// encoded. A peer that sends one is broken; the connection should be
// closed (Java peers close it too).
type FrameError struct {
	// Offset is the byte offset in the frame (after the length prefix)
	// where decoding failed, or -1 when it does not apply.
	Offset int
	Reason string

	tooLarge bool
}

// Is makes errors.Is(err, ErrFrameTooLarge) true for an over-long frame.
func (e *FrameError) Is(target error) bool { return e.tooLarge && target == ErrFrameTooLarge }

func (e *FrameError) Error() string {
	if e.Offset < 0 {
		return "remoting frame: " + e.Reason
	}
	return "remoting frame: " + e.Reason + " at offset " + strconv.Itoa(e.Offset)
}

func frameErr(off int, reason string) error { return &FrameError{Offset: off, Reason: reason} }

// DecodeError says why a header, a message, a body or a string could not
// be decoded. What names the thing ("pull response header", "message 3").
type DecodeError struct {
	What   string
	Reason string
	Err    error
}

func (e *DecodeError) Error() string {
	s := "remoting: decode " + e.What + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(what, reason string) error { return &DecodeError{What: what, Reason: reason} }

// ErrFrameTooLarge matches (errors.Is) the *FrameError returned when a
// length prefix exceeds the caller's maximum.
var ErrFrameTooLarge = errors.New("remoting: frame larger than the maximum")

func itoa(i int) string { return strconv.Itoa(i) }
