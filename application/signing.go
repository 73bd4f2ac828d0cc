package application

import (
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// The request signature of the official RocketMQ 5 clients (gRPC metadata
// "authorization" and "x-mq-date-time"), which the admin HTTP API accepts
// in headers of the same names (docs/security.md).
const (
	AuthScheme     = "MQv2-HMAC-SHA1"
	DateTimeLayout = "20060102T150405Z"
	// MaxAuthorization bounds the authorization value; a real one is
	// about 130 bytes.
	MaxAuthorization = 1024

	authAlgorithm    = AuthScheme
	maxAuthorization = MaxAuthorization
)

// Clock skew policies for the signed timestamp.
const (
	ClockSkewAnyOffset = "any_offset"
	ClockSkewUTC       = "utc"
	ClockSkewOff       = "off"
)

var errMalformedAuthorization = errors.New("malformed authorization")

// ParseAuthorization reads "MQv2-HMAC-SHA1 Credential=<AK>[/...],
// SignedHeaders=x-mq-date-time, Signature=<40 hex digits>" strictly: the
// algorithm must be MQv2-HMAC-SHA1; Credential and Signature must appear
// once each; SignedHeaders, when present, must name x-mq-date-time only;
// other items are ignored, as upstream does. The access key is the
// credential up to its first "/" (the Go client appends "//Rocketmq").
// It returns the access key (possibly, on error, what was read of it).
func ParseAuthorization(v string) (ak string, sig []byte, err error) {
	if len(v) > maxAuthorization {
		return "", nil, errMalformedAuthorization
	}
	alg, rest, ok := strings.Cut(v, " ")
	if !ok || alg != authAlgorithm {
		return "", nil, errMalformedAuthorization
	}
	var cred, sigHex string
	var haveCred, haveSig bool
	for _, item := range strings.Split(rest, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			return "", nil, errMalformedAuthorization
		}
		switch strings.TrimSpace(k) {
		case "Credential":
			if haveCred {
				return "", nil, errMalformedAuthorization
			}
			cred, haveCred = strings.TrimSpace(val), true
		case "Signature":
			if haveSig {
				return "", nil, errMalformedAuthorization
			}
			sigHex, haveSig = strings.TrimSpace(val), true
		case "SignedHeaders":
			if !strings.EqualFold(strings.TrimSpace(val), "x-mq-date-time") {
				return "", nil, errMalformedAuthorization
			}
		}
	}
	ak, _, _ = strings.Cut(cred, "/")
	if !haveCred || !haveSig || domain.ValidateUserName(ak) != nil {
		return ak, nil, errMalformedAuthorization
	}
	if len(sigHex) != 40 {
		return ak, nil, errMalformedAuthorization
	}
	sig, err = hex.DecodeString(sigHex) // either case
	if err != nil {
		return ak, nil, errMalformedAuthorization
	}
	return ak, sig, nil
}

// ParseDateTime reads x-mq-date-time, yyyyMMdd'T'HHmmss'Z'.
func ParseDateTime(v string) (time.Time, error) {
	if len(v) != len(DateTimeLayout) {
		return time.Time{}, errMalformedAuthorization
	}
	return time.Parse(DateTimeLayout, v)
}

// WithinClockSkew applies a clock skew policy to a signed timestamp. The
// official Java and Go clients format their local time and label it Z, so
// with any_offset the timestamp may be off by a time zone offset: a whole
// number of quarter hours between -12:00 and +14:00.
func WithinClockSkew(mode string, window time.Duration, ts, now time.Time) bool {
	d := ts.Sub(now)
	switch mode {
	case ClockSkewOff:
		return true
	case ClockSkewUTC:
		return d.Abs() <= window
	}
	const quarter = 15 * time.Minute
	k := d.Round(quarter) / quarter
	k = max(-48, min(56, k))
	return (d - k*quarter).Abs() <= window
}

// SignRequest returns the authorization value and the x-mq-date-time a
// client sends for secret at now (UTC): what the admin CLI signs with.
func SignRequest(accessKey string, secret []byte, now time.Time) (authorization, dateTime string) {
	dateTime = now.UTC().Format(DateTimeLayout)
	sig := hex.EncodeToString(Sign(secret, []byte(dateTime)))
	return AuthScheme + " Credential=" + accessKey + ", SignedHeaders=x-mq-date-time, Signature=" + sig, dateTime
}
