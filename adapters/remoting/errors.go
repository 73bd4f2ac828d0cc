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

// ResponseError is a peer's answer with a code the caller did not expect:
// the code and remark as the broker or NameServer sent them.
type ResponseError struct {
	Code   ResponseCode
	Remark string
	// Request is the code of the request answered, when the caller set
	// it (0 otherwise): what an authorization failure's remark leaves out.
	Request RequestCode
}

func (e *ResponseError) Error() string {
	if e.Remark == "" {
		return "remoting: " + e.Code.String()
	}
	return "remoting: " + e.Code.String() + ": " + e.Remark
}

// Retryable reports whether another broker (or a later attempt) may
// succeed: the codes on which upstream's producer retries elsewhere
// (SYSTEM_ERROR, SYSTEM_BUSY, SERVICE_NOT_AVAILABLE, NO_PERMISSION,
// TOPIC_NOT_EXIST, NO_BUYER_ID, NOT_IN_CURRENT_UNIT, GO_AWAY) plus the
// flow-control answers (POLLING_FULL, FLOW_CONTROL).
func (e *ResponseError) Retryable() bool {
	switch e.Code {
	case ResponseSystemError, ResponseSystemBusy, ResponseServiceNotAvailable, ResponseNoPermission,
		ResponseTopicNotExist, ResponseNoBuyerId, ResponseNotInCurrentUnit, ResponseGoAway,
		ResponsePollingFull, ResponseFlowControl:
		return true
	}
	return false
}

// Expect returns nil when resp's code is one of ok (SUCCESS when ok is
// empty), and a *ResponseError otherwise.
func Expect(resp *Command, ok ...ResponseCode) error {
	if len(ok) == 0 && resp.Code == int32(ResponseSuccess) {
		return nil
	}
	for _, c := range ok {
		if resp.Code == int32(c) {
			return nil
		}
	}
	return &ResponseError{Code: ResponseCode(resp.Code), Remark: resp.Remark}
}
