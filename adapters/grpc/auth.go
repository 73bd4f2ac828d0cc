package grpc

import (
	"context"
	"errors"
	"fmt"
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

	dateTimeLayout   = application.DateTimeLayout
	maxAuthorization = application.MaxAuthorization
)

// Clock skew policies (grpc.auth.clockSkew).
const (
	ClockSkewAnyOffset = application.ClockSkewAnyOffset
	ClockSkewUTC       = application.ClockSkewUTC
	ClockSkewOff       = application.ClockSkewOff
)

// AuthConfig tunes request authentication on the gRPC port (auth.enabled
// turns it on).
type AuthConfig struct {
	ClockSkew       string        `yaml:"clockSkew" enum:"any_offset,utc,off" help:"how x-mq-date-time, the signed timestamp, is checked: any_offset (default: within clockSkewWindow of now shifted by any whole-quarter-hour time zone offset, because the Java and Go clients send local time labelled Z), utc (within clockSkewWindow of now; breaks clients on hosts not running in UTC) or off (never, as Apache RocketMQ: a captured signature stays valid forever)"`
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
var reservedMetadata = []string{reservedAK, reservedChannelID, reservedRemoteAddr, reservedLocalAddr}

const (
	reservedAK         = "x-mq-authorization-ak"
	reservedChannelID  = "x-mq-channel-id"
	reservedRemoteAddr = "rpc-remote-address"
	reservedLocalAddr  = "rpc-local-address"
)

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
	// Looked up one by one: copying every request's metadata to find none
	// of them, the usual case, costs a map and a slice per header.
	found := false
	for _, k := range reservedMetadata {
		if len(metadata.ValueFromIncomingContext(ctx, k)) > 0 {
			found = true
			break
		}
	}
	if !found {
		return ctx
	}
	md, _ := metadata.FromIncomingContext(ctx) // a copy
	a.stripped.Add(1)
	for _, k := range reservedMetadata {
		delete(md, k)
	}
	return metadata.NewIncomingContext(ctx, md)
}

// parseAuthorization, parseDateTime and withinSkew are the rules shared
// with the admin API, in the application layer.
func parseAuthorization(v string) (string, []byte, error) { return application.ParseAuthorization(v) }

func parseDateTime(v string) (time.Time, error) { return application.ParseDateTime(v) }

func withinSkew(cfg AuthConfig, ts, now time.Time) bool {
	return application.WithinClockSkew(cfg.ClockSkew, cfg.ClockSkewWindow, ts, now)
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
