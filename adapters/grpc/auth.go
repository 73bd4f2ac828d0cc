package grpc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/metadata"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Metadata of the official clients' request signing (docs/security.md §3.1).
const (
	mdAuthorization = "authorization"
	mdDateTime      = "x-mq-date-time"

	authAlgorithm  = "MQv2-HMAC-SHA1"
	dateTimeLayout = "20060102T150405Z"
	// maxAuthorization bounds the authorization value; a real one is
	// about 130 bytes.
	maxAuthorization = 1024
)

// Clock skew policies (grpc.auth.clockSkew).
const (
	ClockSkewAnyOffset = "any_offset"
	ClockSkewUTC       = "utc"
	ClockSkewOff       = "off"
)

// AuthConfig tunes request authentication on the gRPC port (auth.enabled
// turns it on).
type AuthConfig struct {
	ClockSkew       string        `yaml:"clockSkew" help:"how x-mq-date-time, the signed timestamp, is checked: any_offset (default: within clockSkewWindow of now shifted by any whole-quarter-hour time zone offset, because the Java and Go clients send local time labelled Z), utc (within clockSkewWindow of now; breaks clients on hosts not running in UTC) or off (never, as Apache RocketMQ: a captured signature stays valid forever)"`
	ClockSkewWindow time.Duration `yaml:"clockSkewWindow" help:"largest difference between a request's signed timestamp and the proxy's clock (after the time zone offset with any_offset); at most 7m with any_offset"`
}

// DefaultAuthConfig returns the defaults: any_offset within 5 minutes.
func DefaultAuthConfig() AuthConfig {
	return AuthConfig{ClockSkew: ClockSkewAnyOffset, ClockSkewWindow: 5 * time.Minute}
}

// Validate checks the settings.
func (c AuthConfig) Validate() error {
	switch c.ClockSkew {
	case ClockSkewAnyOffset:
		if c.ClockSkewWindow <= 0 || c.ClockSkewWindow > 7*time.Minute {
			return errors.New("clockSkewWindow must be positive and at most 7m with clockSkew any_offset (time zone offsets are 15 minutes apart)")
		}
	case ClockSkewUTC:
		if c.ClockSkewWindow <= 0 {
			return errors.New("clockSkewWindow must be positive")
		}
	case ClockSkewOff:
	default:
		return fmt.Errorf("clockSkew %q must be any_offset, utc or off", c.ClockSkew)
	}
	return nil
}

// reservedMetadata are keys the Apache proxy adds itself (only when
// absent) and reads identity or addresses from. rmqproxy never reads them;
// they are removed from inbound requests so that nothing downstream can.
var reservedMetadata = []string{"x-mq-authorization-ak", "x-mq-channel-id", "rpc-remote-address", "rpc-local-address"}

// authenticator checks the signature of gRPC requests.
type authenticator struct {
	sec      *application.Security
	cfg      AuthConfig
	now      func() time.Time
	stripped atomic.Uint64 // requests that carried reserved metadata
}

// credentials reads a request's credentials. A malformed header is
// reported in Fault, never as an error.
func (a *authenticator) credentials(md metadata.MD) application.Credentials {
	// The Go client v5.1.4 re-signs the same context when it retries a
	// send, so a retry carries every attempt's authorization and
	// x-mq-date-time: the last ones belong together, and are what the
	// Apache proxy reads (grpc-java's Metadata.get returns the last value).
	auth := md.Get(mdAuthorization)
	if len(auth) == 0 {
		return application.Credentials{Fault: application.ReasonMissingCredentials}
	}
	if len(auth) > 16 {
		return application.Credentials{Fault: application.ReasonMalformed}
	}
	ak, sig, err := parseAuthorization(auth[len(auth)-1])
	if err != nil {
		return application.Credentials{AccessKey: clipAK(ak), Fault: application.ReasonMalformed}
	}
	dts := md.Get(mdDateTime)
	if len(dts) == 0 || len(dts) != len(auth) {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonMalformed}
	}
	dt := dts[len(dts)-1]
	ts, err := parseDateTime(dt)
	if err != nil {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonMalformed}
	}
	if !withinSkew(a.cfg, ts, a.now()) {
		return application.Credentials{AccessKey: ak, Fault: application.ReasonClockSkew}
	}
	return application.Credentials{AccessKey: ak, Content: []byte(dt), Signature: sig}
}

func clipAK(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

// authenticate verifies the request in ctx; on failure it returns the
// status to answer (UNAUTHORIZED). op names the RPC for the audit log.
func (a *authenticator) authenticate(ctx context.Context, op string) (application.Principal, *v2.Status) {
	md, _ := metadata.FromIncomingContext(ctx)
	p, err := a.sec.Authenticate(ctx, op, a.credentials(md))
	if err != nil {
		return p, &v2.Status{Code: codeOf(domain.ReasonOf(err)), Message: domain.MessageOf(err)}
	}
	return p, nil
}

// stripReserved returns ctx without the reserved metadata keys.
func (a *authenticator) stripReserved(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	found := false
	for _, k := range reservedMetadata {
		if len(md[k]) > 0 {
			found = true
		}
	}
	if !found {
		return ctx
	}
	a.stripped.Add(1)
	md = md.Copy()
	for _, k := range reservedMetadata {
		delete(md, k)
	}
	return metadata.NewIncomingContext(ctx, md)
}

var errMalformed = errors.New("malformed authorization")

// parseAuthorization reads "MQv2-HMAC-SHA1 Credential=<AK>[/...],
// SignedHeaders=x-mq-date-time, Signature=<40 hex digits>" strictly: the
// algorithm must be MQv2-HMAC-SHA1; Credential and Signature must appear
// once each; SignedHeaders, when present, must name x-mq-date-time only;
// other items are ignored, as upstream does. The access key is the
// credential up to its first "/" (the Go client appends "//Rocketmq").
// It returns the access key (possibly, on error, what was read of it).
func parseAuthorization(v string) (ak string, sig []byte, err error) {
	if len(v) > maxAuthorization {
		return "", nil, errMalformed
	}
	alg, rest, ok := strings.Cut(v, " ")
	if !ok || alg != authAlgorithm {
		return "", nil, errMalformed
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
			return "", nil, errMalformed
		}
		switch strings.TrimSpace(k) {
		case "Credential":
			if haveCred {
				return "", nil, errMalformed
			}
			cred, haveCred = strings.TrimSpace(val), true
		case "Signature":
			if haveSig {
				return "", nil, errMalformed
			}
			sigHex, haveSig = strings.TrimSpace(val), true
		case "SignedHeaders":
			if !strings.EqualFold(strings.TrimSpace(val), mdDateTime) {
				return "", nil, errMalformed
			}
		}
	}
	ak, _, _ = strings.Cut(cred, "/")
	if !haveCred || !haveSig || domain.ValidateUserName(ak) != nil {
		return ak, nil, errMalformed
	}
	if len(sigHex) != 40 {
		return ak, nil, errMalformed
	}
	sig, err = hex.DecodeString(sigHex) // either case
	if err != nil {
		return ak, nil, errMalformed
	}
	return ak, sig, nil
}

// parseDateTime reads x-mq-date-time, yyyyMMdd'T'HHmmss'Z'.
func parseDateTime(v string) (time.Time, error) {
	if len(v) != len(dateTimeLayout) {
		return time.Time{}, errMalformed
	}
	return time.Parse(dateTimeLayout, v)
}

// withinSkew applies the clock skew policy to a signed timestamp. The
// official Java and Go clients format their local time and label it Z, so
// with any_offset the timestamp may be off by a time zone offset: a whole
// number of quarter hours between -12:00 and +14:00.
func withinSkew(cfg AuthConfig, ts, now time.Time) bool {
	d := ts.Sub(now)
	switch cfg.ClockSkew {
	case ClockSkewOff:
		return true
	case ClockSkewUTC:
		return d.Abs() <= cfg.ClockSkewWindow
	}
	const quarter = 15 * time.Minute
	k := d.Round(quarter) / quarter
	k = max(-48, min(56, k))
	return (d - k*quarter).Abs() <= cfg.ClockSkewWindow
}

// authorize checks the accesses a request needs; on denial it returns the
// status to answer (FORBIDDEN).
func (s *Service) authorize(ctx context.Context, p application.Principal, req any) *v2.Status {
	op, reqs := accessOf(req, ports.RequestInfoFrom(ctx))
	var err error
	if op == opUnmapped {
		err = s.sec.Refuse(ctx, p, op, "unmapped_request")
	} else {
		err = s.sec.Authorize(ctx, p, op, reqs)
	}
	if err != nil {
		return &v2.Status{Code: codeOf(domain.ReasonOf(err)), Message: domain.MessageOf(err)}
	}
	return nil
}
