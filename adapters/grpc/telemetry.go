package grpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rmqproxy/rmqproxy/ports"
)

// telemetryChannel is a client's Telemetry stream seen as a command
// channel. The receive loop owns reading; writes are serialised by mu so
// that replies and server-initiated commands never interleave.
type telemetryChannel struct {
	stream v2.MessagingService_TelemetryServer
	mu     sync.Mutex
}

func (c *telemetryChannel) Done() <-chan struct{} { return c.stream.Context().Done() }

func (c *telemetryChannel) send(cmd *v2.TelemetryCommand) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stream.Send(cmd)
}

// Send writes a server command to the client. gRPC's stream write has no
// context of its own: it blocks only while the client's flow-control window
// is full, and fails once the stream is gone.
func (c *telemetryChannel) Send(ctx context.Context, cmd ports.ClientCommand) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case cmd.RecoverTransaction != nil:
		m := cmd.RecoverTransaction
		return c.send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_RecoverOrphanedTransactionCommand{
			RecoverOrphanedTransactionCommand: &v2.RecoverOrphanedTransactionCommand{Message: toProtoMessage(m), TransactionId: m.TransactionID},
		}})
	default:
		return errors.New("empty client command")
	}
}

var _ ports.ClientChannel = (*telemetryChannel)(nil)

// Telemetry serves a client's settings handshake and, later, server-side
// commands. Each inbound command runs through the request pipeline. A
// validation failure ends the stream with gRPC INVALID_ARGUMENT, any other
// failure with INTERNAL; pipeline failures are written as a status command
// followed by a normal end of stream, as the Apache proxy does.
func (s *Service) Telemetry(stream v2.MessagingService_TelemetryServer) error {
	ctx := stream.Context()
	info := requestInfo(ctx)
	ch := &telemetryChannel{stream: stream}
	if info.ClientID == "" {
		_ = ch.send(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_CLIENT_ID_REQUIRED, Message: "client id cannot be empty"}})
		return nil
	}
	// The stream counts in admission for as long as it is open.
	if !s.admit.enter(kindTelemetry) {
		_ = ch.send(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "flow limit"}})
		return nil
	}
	defer s.admit.leave(kindTelemetry)
	ctx = ports.WithRequestInfo(ctx, info)
	// A client opens its stream to send its settings at once; one that does
	// not within grpc.settingsTimeout is ended.
	settingsTimer := time.NewTimer(s.cfg.SettingsTimeout)
	defer settingsTimer.Stop()
	// A reader goroutine owned by this handler feeds inbound commands, so
	// the handler can also end the stream when the server shuts down. It
	// exits when the stream ends, which happens at the latest when this
	// handler returns.
	type inbound struct {
		cmd *v2.TelemetryCommand
		err error
	}
	in := make(chan inbound)
	go func() {
		for {
			cmd, err := stream.Recv()
			select {
			case in <- inbound{cmd, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var msg inbound
		select {
		case <-s.shutdown.Done():
			return nil
		case <-ctx.Done():
			return nil
		case <-settingsTimer.C:
			return status.Errorf(codes.FailedPrecondition,
				"no client settings within %v of opening the Telemetry stream (grpc.settingsTimeout); send the settings command first", s.cfg.SettingsTimeout)
		case msg = <-in:
		}
		if errors.Is(msg.err, io.EOF) {
			return nil
		}
		if msg.err != nil {
			s.log.LogAttrs(ctx, slog.LevelDebug, "telemetry stream ended", slog.String("client_id", info.ClientID), slog.Any("error", msg.err))
			return nil
		}
		if !s.admit.enter(kindClient) {
			_ = ch.send(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "flow limit"}})
			return nil
		}
		err := s.telemetryCommand(ctx, ch, msg.cmd)
		s.admit.leave(kindClient)
		if err != nil {
			return err
		}
		if msg.cmd.GetSettings() != nil {
			settingsTimer.Stop()
		}
	}
}

func (s *Service) telemetryCommand(ctx context.Context, ch *telemetryChannel, cmd *v2.TelemetryCommand) error {
	switch c := cmd.GetCommand().(type) {
	case *v2.TelemetryCommand_Settings:
		info := ports.RequestInfoFrom(ctx)
		server, err := s.app.UpdateSettings(ctx, toClientSettings(c.Settings, info), ch)
		if err != nil {
			if isClientFault(err) {
				return status.Errorf(codes.InvalidArgument, "process client telemetryCommand failed. %s", statusOf(ctx, s.log, err).GetMessage())
			}
			return status.Errorf(codes.Internal, "process client telemetryCommand failed. %s", statusOf(ctx, s.log, err).GetMessage())
		}
		reply := &v2.TelemetryCommand{Status: okStatus(), Command: &v2.TelemetryCommand_Settings{Settings: mergeSettings(c.Settings, server)}}
		if err := ch.send(reply); err != nil {
			return nil // the client went away; nothing to answer
		}
	default:
		// Replies to server commands (thread stack traces, verify results)
		// have no pending request to complete yet; other commands are ignored.
		s.log.LogAttrs(ctx, slog.LevelDebug, "ignored telemetry command", slog.String("client_id", ports.RequestInfoFrom(ctx).ClientID))
	}
	return nil
}
