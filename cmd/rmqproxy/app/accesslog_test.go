package app_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// TestAccessLogLineHasOneComponent: with log.access and log.format json,
// the access line of a request names its component once, as
// "component":"access" (docs/observability.md), not also the gRPC
// adapter's "component":"grpc": a JSON object with a key twice is refused
// by strict log pipelines and read as either value by others.
func TestAccessLogLineHasOneComponent(t *testing.T) {
	line, logs := queryRouteAccessLine(t, "info")
	if line == "" {
		t.Fatalf("no access line for QueryRoute in:\n%s", logs)
	}
	if n := strings.Count(line, `"component":`); n != 1 || !strings.Contains(line, `"component":"access"`) {
		t.Errorf("access line names %d components, want one, access:\n%s", n, line)
	}
}

// TestAccessLogIgnoresTheLogLevel: the access lines were logged at Info,
// so log.access with log.level warn or error (the level an operator sets
// to keep the process log quiet) wrote none: the per-request record of
// which user sent, received and acked what was silently off. It is
// written whatever the level, as log.access asks.
func TestAccessLogIgnoresTheLogLevel(t *testing.T) {
	for _, level := range []string{"warn", "error"} {
		if line, logs := queryRouteAccessLine(t, level); line == "" {
			t.Errorf("log.level %s: no access line for QueryRoute in:\n%s", level, logs)
		}
	}
}

// queryRouteAccessLine runs the proxy with log.access, log.format json and
// log.level level, sends a QueryRoute and returns its access line ("" if
// none) and the whole log.
func queryRouteAccessLine(t *testing.T, level string) (string, string) {
	cfg := testenv.Config(t)
	cfg.Log.Access = true
	cfg.Log.Level = level
	cfg.Log.Format = "json"
	cfg.Local.AutoCreateTopics = true
	var logs logbuf.Buffer
	var srv *grpcadapter.Server
	a := fx.New(app.Options(cfg, app.NewLogger(&logs, cfg.Log)), fx.Populate(&srv))
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	conn, err := grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mctx := metadata.AppendToOutgoingContext(ctx,
		"x-mq-client-id", "access-1", "x-mq-language", "GO", "x-mq-client-version", "5.1.4", "x-mq-protocol", "v2")
	if _, err := v2.NewMessagingServiceClient(conn).QueryRoute(mctx, &v2.QueryRouteRequest{Topic: &v2.Resource{Name: "access-t"}}); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"rpc":"QueryRoute"`) {
			line = l
		}
	}
	return line, logs.String()
}
