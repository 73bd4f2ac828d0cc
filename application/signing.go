package application

import (
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// The request signature of the official RocketMQ 5 clients (gRPC metadata
// "authorization" and "x-mq-date-time"); the admin HTTP API uses the same
// authorization format over a longer string to sign (AdminStringToSign).
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
	ak, signed, sig, err := parseAuthorization(v)
	if err == nil && signed != "" && signed != "x-mq-date-time" {
		return "", nil, errMalformedAuthorization
	}
	return ak, sig, err
}

// ParseAdminAuthorization reads the authorization of an admin API call
// like [ParseAuthorization], but returns SignedHeaders (lower-cased, ""
// when absent) instead of requiring x-mq-date-time: the caller compares it
// with [AdminSignedHeaders], and tells an old client (SignedHeaders
// x-mq-date-time, or none) from a malformed header.
func ParseAdminAuthorization(v string) (ak, signedHeaders string, sig []byte, err error) {
	return parseAuthorization(v)
}

func parseAuthorization(v string) (ak, signed string, sig []byte, err error) {
	if len(v) > maxAuthorization {
		return "", "", nil, errMalformedAuthorization
	}
	alg, rest, ok := strings.Cut(v, " ")
	if !ok || alg != authAlgorithm {
		return "", "", nil, errMalformedAuthorization
	}
	var cred, sigHex string
	var haveCred, haveSig, haveSigned bool
	for _, item := range strings.Split(rest, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			return "", "", nil, errMalformedAuthorization
		}
		switch strings.TrimSpace(k) {
		case "Credential":
			if haveCred {
				return "", "", nil, errMalformedAuthorization
			}
			cred, haveCred = strings.TrimSpace(val), true
		case "Signature":
			if haveSig {
				return "", "", nil, errMalformedAuthorization
			}
			sigHex, haveSig = strings.TrimSpace(val), true
		case "SignedHeaders":
			val = strings.ToLower(strings.TrimSpace(val))
			if haveSigned && val != signed {
				return "", "", nil, errMalformedAuthorization
			}
			signed, haveSigned = val, true
		}
	}
	ak, _, _ = strings.Cut(cred, "/")
	if !haveCred || !haveSig || domain.ValidateUserName(ak) != nil {
		return ak, "", nil, errMalformedAuthorization
	}
	if len(sigHex) != 40 {
		return ak, "", nil, errMalformedAuthorization
	}
	sig, err = hex.DecodeString(sigHex) // either case
	if err != nil {
		return ak, "", nil, errMalformedAuthorization
	}
	return ak, signed, sig, nil
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
// gRPC client sends for secret at now (UTC). Admin API calls are signed
// with [AdminStringToSign] instead.
func SignRequest(accessKey string, secret []byte, now time.Time) (authorization, dateTime string) {
	dateTime = now.UTC().Format(DateTimeLayout)
	sig := hex.EncodeToString(Sign(secret, []byte(dateTime)))
	return AuthScheme + " Credential=" + accessKey + ", SignedHeaders=x-mq-date-time, Signature=" + sig, dateTime
}

// The admin API's signature (docs/security.md, "Signing admin calls").
// HMAC-SHA1 with the user's secret over AdminStringToSign: the method, the
// request target, the SHA-256 of the body (x-mq-content-sha256), the UTC
// date-time (x-mq-date-time) and a one-time nonce (x-mq-nonce).
const (
	// AdminSignedHeaders is the SignedHeaders value an admin call must
	// carry: the headers whose values the signature covers, sorted.
	AdminSignedHeaders = "x-mq-content-sha256;x-mq-date-time;x-mq-nonce"
	// adminSignatureVersion is the first line of the string to sign, so
	// that it can never equal what a gRPC client signs (a bare date-time).
	adminSignatureVersion = "RMQPROXY-ADMIN-V1"
	// MinAdminNonce and MaxAdminNonce bound the length of x-mq-nonce.
	MinAdminNonce = 16
	MaxAdminNonce = 64
)

// AdminStringToSign returns the bytes an admin call's signature covers:
// six lines joined by "\n", without a final one:
//
//	RMQPROXY-ADMIN-V1
//	<method, as on the request line: GET>
//	<request target, as on the request line: /v1/topics/a%2Fb?x=1>
//	<x-mq-content-sha256: lower-case hex SHA-256 of the body>
//	<x-mq-date-time: 20260102T030405Z>
//	<x-mq-nonce>
//
// None of the parts can hold a line break (the request line and the header
// formats forbid it), so the string reads back one way only.
func AdminStringToSign(method, target, contentSHA256, dateTime, nonce string) []byte {
	return []byte(strings.Join([]string{adminSignatureVersion, method, target, contentSHA256, dateTime, nonce}, "\n"))
}

// ValidAdminNonce reports whether v is a well-formed x-mq-nonce: 16 to 64
// characters from A-Z, a-z, 0-9, "-" and "_" (the CLI sends 32 hex
// digits, 128 random bits).
func ValidAdminNonce(v string) bool {
	if len(v) < MinAdminNonce || len(v) > MaxAdminNonce {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidContentSHA256 reports whether v is 64 lower-case hex digits.
func ValidContentSHA256(v string) bool {
	if len(v) != 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// SignAdminRequest returns the authorization value of an admin call whose
// string to sign is [AdminStringToSign] of the same parts.
func SignAdminRequest(accessKey string, secret []byte, method, target, contentSHA256, dateTime, nonce string) string {
	sig := hex.EncodeToString(Sign(secret, AdminStringToSign(method, target, contentSHA256, dateTime, nonce)))
	return AuthScheme + " Credential=" + accessKey + ", SignedHeaders=" + AdminSignedHeaders + ", Signature=" + sig
}
