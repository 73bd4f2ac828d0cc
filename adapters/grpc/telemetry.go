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
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
)

// telemetryQueueLength bounds the server commands waiting for one client's
// Telemetry stream.
const telemetryQueueLength = 16

// telemetryQueueBytes bounds the size of the server commands waiting for
// one client's Telemetry stream (a check-back carries its message, up to
// messaging.limits.maxBodySize): a client that does not read its stream
// holds at most this much and one command more (an empty queue takes a
// command of any size), plus what its stream's flow control lets through.
const telemetryQueueBytes = 4 << 20

// stalledAfter is how long a write to a client's Telemetry stream may wait
// (for the client to open its HTTP/2 flow-control window) before the client
// counts as stalled: commands are then refused at once instead of waiting
// for room in its queue.
const stalledAfter = time.Second

// GoodbyeGrace is how long the proxy leaves the Telemetry stream of a
// client that said goodbye (NotifyClientTermination) for the client to
// close it, before it completes the stream itself.
const GoodbyeGrace = 2 * time.Second

// errClientStalled is the answer of a channel whose client does not read.
var errClientStalled = errors.New("the client does not read its Telemetry stream (its queue is full and its last command has not been taken)")

// telemetryChannel is a client's Telemetry stream seen as a command
// channel. The Telemetry handler is the stream's only writer: it writes
// the replies to the client's commands and the server commands queued by
// Send, so that a client that does not read blocks nobody but its own
// handler.
type telemetryChannel struct {
	stream v2.MessagingService_TelemetryServer
	queue  chan queuedCommand
	// ended is closed by End: the handler then completes the stream.
	ended   chan struct{}
	endOnce sync.Once

	mu      sync.Mutex
	gen     uint64        // counts writes, so that a late stall mark is ignored
	stalled chan struct{} // closed while a write has waited longer than stalledAfter
	isStall bool
	// queuedBytes is the size of the commands in queue; room is closed
	// (and replaced) when the writer takes one.
	queuedBytes int
	room        chan struct{}
}

func newTelemetryChannel(stream v2.MessagingService_TelemetryServer) *telemetryChannel {
	return &telemetryChannel{stream: stream, queue: make(chan queuedCommand, telemetryQueueLength), ended: make(chan struct{}),
		stalled: make(chan struct{}), room: make(chan struct{})}
}

func (c *telemetryChannel) Done() <-chan struct{} { return c.stream.Context().Done() }

// End asks the handler to complete the stream (the client said goodbye).
func (c *telemetryChannel) End() { c.endOnce.Do(func() { close(c.ended) }) }

// queuedCommand is a server command waiting for the handler to write it;
// written, when not nil, is called once it is written.
type queuedCommand struct {
	msg     *v2.TelemetryCommand
	written func()
	size    int // of msg, for telemetryQueueBytes
}

// enqueue queues q if the queue has room for it, in places and in bytes;
// when it has not, it returns the channels closed when the writer takes a
// command and when the client counts as stalled.
func (c *telemetryChannel) enqueue(q queuedCommand) (ok bool, room, stalled <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queuedBytes == 0 || c.queuedBytes+q.size <= telemetryQueueBytes {
		select {
		case c.queue <- q:
			c.queuedBytes += q.size
			return true, nil, nil
		default:
		}
	}
	return false, c.room, c.stalled
}

// taken records that the writer took q from the queue.
func (c *telemetryChannel) taken(q queuedCommand) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queuedBytes -= q.size
	close(c.room)
	c.room = make(chan struct{})
}

// writeQueued writes a queued command and reports it written.
func (c *telemetryChannel) writeQueued(q queuedCommand) error {
	if err := c.write(q.msg); err != nil {
		return err
	}
	if q.written != nil {
		q.written()
	}
	return nil
}

// errClientBusy is the answer of TrySend when the client's queue is full
// (telemetryQueueLength commands, or telemetryQueueBytes).
var errClientBusy = errors.New("the client's Telemetry command queue is full")

// Send queues a server command for the client. When the queue is full it
// waits for room until ctx ends, unless the client is stalled; it fails at
// once when the stream has ended.
func (c *telemetryChannel) Send(ctx context.Context, cmd ports.ClientCommand) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.send(ctx, cmd, true)
}

// TrySend queues a server command for the client if its queue has room
// now; it never waits.
func (c *telemetryChannel) TrySend(cmd ports.ClientCommand) error {
	return c.send(context.Background(), cmd, false)
}

func (c *telemetryChannel) send(ctx context.Context, cmd ports.ClientCommand, wait bool) error {
	var msg *v2.TelemetryCommand
	switch {
	case cmd.RecoverTransaction != nil:
		m := cmd.RecoverTransaction
		msg = &v2.TelemetryCommand{Command: &v2.TelemetryCommand_RecoverOrphanedTransactionCommand{
			RecoverOrphanedTransactionCommand: &v2.RecoverOrphanedTransactionCommand{Message: toProtoMessage(m), TransactionId: m.TransactionID},
		}}
	case cmd.PrintThreadStack != nil:
		msg = &v2.TelemetryCommand{Command: &v2.TelemetryCommand_PrintThreadStackTraceCommand{
			PrintThreadStackTraceCommand: &v2.PrintThreadStackTraceCommand{Nonce: cmd.PrintThreadStack.Nonce},
		}}
	case cmd.VerifyMessage != nil:
		msg = &v2.TelemetryCommand{Command: &v2.TelemetryCommand_VerifyMessageCommand{
			VerifyMessageCommand: &v2.VerifyMessageCommand{Nonce: cmd.VerifyMessage.Nonce, Message: toProtoMessage(&cmd.VerifyMessage.Message)},
		}}
	default:
		return errors.New("empty client command")
	}
	select {
	case <-c.Done():
		return errors.New("the client's Telemetry stream has ended")
	case <-c.ended:
		return errors.New("the client said goodbye (NotifyClientTermination)")
	default:
	}
	q := queuedCommand{msg: msg, written: cmd.Written, size: proto.Size(msg)}
	for {
		ok, room, stalled := c.enqueue(q)
		if ok {
			return nil
		}
		if !wait {
			return errClientBusy
		}
		select {
		case <-room:
		case <-stalled:
			return errClientStalled
		case <-c.Done():
			return errors.New("the client's Telemetry stream has ended")
		case <-c.ended:
			return errors.New("the client said goodbye (NotifyClientTermination)")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// write sends a command or a reply on the stream, marking the client stalled
// while the write waits longer than stalledAfter. Only the handler calls it.
func (c *telemetryChannel) write(cmd *v2.TelemetryCommand) error {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.mu.Unlock()
	t := time.AfterFunc(stalledAfter, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.gen == gen && !c.isStall {
			c.isStall = true
			close(c.stalled)
		}
	})
	err := c.stream.Send(cmd)
	t.Stop()
	c.mu.Lock()
	c.gen++
	if c.isStall {
		c.isStall = false
		c.stalled = make(chan struct{})
	}
	c.mu.Unlock()
	return err
}

var _ ports.ClientChannel = (*telemetryChannel)(nil)

// Telemetry serves a client's settings handshake and, later, server-side
// commands. Each inbound command runs through the request pipeline. A
// validation failure ends the stream with gRPC INVALID_ARGUMENT, any other
// failure with INTERNAL; pipeline failures are written as a status command
// followed by a normal end of stream, as the Apache proxy does.
func (s *Service) Telemetry(stream v2.MessagingService_TelemetryServer) error {
	info, ctx := s.callerInfo(stream.Context())
	ch := newTelemetryChannel(stream)
	// The stream's principal is authenticated when it opens; every
	// Settings command on it is authorized.
	var principal application.Principal
	secured := s.auth != nil && s.sec.Enabled()
	if secured {
		p, st := s.auth.authenticate(ctx, "Telemetry")
		if st != nil {
			_ = stream.Send(&v2.TelemetryCommand{Status: st})
			return nil
		}
		principal = p
		ctx = application.WithPrincipal(ctx, p)
	}
	if info.ClientID == "" {
		_ = stream.Send(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_CLIENT_ID_REQUIRED, Message: "client id cannot be empty"}})
		return nil
	}
	// A policy change that revokes the principal (user deleted, disabled,
	// secret changed) ends the stream with UNAUTHORIZED.
	var revoked chan error // nil (never ready) without authentication
	if secured {
		revoked = make(chan error, 1)
		stop := s.sec.WatchRevocation(principal, func(err error) { revoked <- err })
		defer stop()
	}
	// The stream counts in admission for as long as it is open, or until
	// its client says goodbye.
	if !s.admit.enter(kindTelemetry) {
		_ = stream.Send(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "flow limit"}})
		return nil
	}
	release := []func(){func() { s.admit.leave(kindTelemetry) }}
	if s.traffic != nil {
		leaveClient, err := s.traffic.EnterClient(ctx, application.DirectionSend)
		if err != nil {
			s.admit.leave(kindTelemetry)
			_ = stream.Send(&v2.TelemetryCommand{Status: s.statusOf(ctx, err)})
			return nil
		}
		release = append(release, leaveClient)
	}
	releaseSlots := sync.OnceFunc(func() {
		for _, f := range release {
			f()
		}
	})
	defer releaseSlots()
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
		case <-ch.ended:
			// The client said goodbye. It gives its slots back now, and
			// closes the stream itself (the Java, Node.js and Python
			// clients do, right after the answer; the Node.js client
			// reopens a stream the proxy completes first, even when shut
			// down); one that keeps it open (the Go client) has it
			// completed after GoodbyeGrace.
			releaseSlots()
			grace := time.NewTimer(GoodbyeGrace)
			defer grace.Stop()
			for {
				select {
				case <-s.shutdown.Done():
					return nil
				case <-ctx.Done():
					return nil
				case <-grace.C:
					return nil
				case msg := <-in:
					if msg.err != nil {
						return nil // closed by the client
					}
					// Commands after the goodbye are ignored.
				}
			}
		case err := <-revoked:
			_ = ch.write(&v2.TelemetryCommand{Status: s.statusOf(ctx, err)})
			return nil
		case <-settingsTimer.C:
			return status.Errorf(codes.FailedPrecondition,
				"no client settings within %v of opening the Telemetry stream (grpc.settingsTimeout); send the settings command first", s.cfg.SettingsTimeout)
		case cmd := <-ch.queue:
			ch.taken(cmd)
			if err := ch.writeQueued(cmd); err != nil {
				return nil // the client went away
			}
			continue
		case msg = <-in:
		}
		if errors.Is(msg.err, io.EOF) {
			return nil
		}
		if msg.err != nil {
			s.log.LogAttrs(ctx, slog.LevelDebug, "telemetry stream ended", slog.String("client_id", info.ClientID), slog.Any("error", msg.err))
			return nil
		}
		if settings := msg.cmd.GetSettings(); settings != nil && secured {
			if st := s.authorize(ctx, principal, settings); st != nil {
				_ = ch.write(&v2.TelemetryCommand{Status: st})
				return nil
			}
		}
		if !s.admit.enter(kindClient) {
			_ = ch.write(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "flow limit"}})
			return nil
		}
		// The slot is given back also when the command panics, and before
		// the reply is written: a client that does not read its stream
		// makes the write wait for as long as it keeps the connection,
		// which must not hold a place of kind client (heartbeats need
		// them). The stream keeps its Telemetry place meanwhile.
		reply, err := func() (*v2.TelemetryCommand, error) {
			defer s.admit.leave(kindClient)
			return s.telemetryCommand(ctx, ch, msg.cmd)
		}()
		if err != nil {
			return err
		}
		if msg.cmd.GetSettings() != nil {
			settingsTimer.Stop()
		}
		// Through write, so that a client that does not read counts as
		// stalled while its reply waits, as it does while a command waits.
		if reply != nil && ch.write(reply) != nil {
			return nil // the client went away; nothing to answer
		}
	}
}

// telemetryCommand handles a command of the client and returns the reply
// to write (nil for none).
func (s *Service) telemetryCommand(ctx context.Context, ch *telemetryChannel, cmd *v2.TelemetryCommand) (*v2.TelemetryCommand, error) {
	switch c := cmd.GetCommand().(type) {
	case *v2.TelemetryCommand_Settings:
		info := ports.RequestInfoFrom(ctx)
		settings, err := toClientSettings(c.Settings, info)
		var server application.ServerSettings
		if err == nil {
			server, err = s.app.UpdateSettings(ctx, settings, ch)
		}
		if err != nil {
			if isClientFault(err) {
				return nil, status.Errorf(codes.InvalidArgument, "process client telemetryCommand failed. %s", s.statusOf(ctx, err).GetMessage())
			}
			return nil, status.Errorf(codes.Internal, "process client telemetryCommand failed. %s", s.statusOf(ctx, err).GetMessage())
		}
		if server.MaxBodySize == 0 {
			// No body size check (messaging.limits.maxBodySize 0): the
			// clients check publishing.max_body_size before sending, and
			// 0 would make them refuse every body. The largest request
			// the proxy takes bounds a body.
			server.MaxBodySize = s.cfg.MaxRecvMessageSize
		}
		return &v2.TelemetryCommand{Status: okStatus(), Command: &v2.TelemetryCommand_Settings{Settings: mergeSettings(c.Settings, server)}}, nil
	case *v2.TelemetryCommand_ThreadStackTrace:
		s.app.ClientReplied(ctx, application.ClientReply{Nonce: c.ThreadStackTrace.GetNonce(), Code: cmd.GetStatus().GetCode().String(),
			Message: cmd.GetStatus().GetMessage(), StackTrace: c.ThreadStackTrace.GetThreadStackTrace()})
	case *v2.TelemetryCommand_VerifyMessageResult:
		s.app.ClientReplied(ctx, application.ClientReply{Nonce: c.VerifyMessageResult.GetNonce(), Code: cmd.GetStatus().GetCode().String(),
			Message: cmd.GetStatus().GetMessage()})
	default:
		// Other commands from a client are ignored, as upstream does.
		s.log.LogAttrs(ctx, slog.LevelDebug, "ignored telemetry command", slog.String("client_id", ports.RequestInfoFrom(ctx).ClientID))
	}
	return nil, nil
}
