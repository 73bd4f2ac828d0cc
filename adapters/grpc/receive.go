package grpc

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// ReceiveMessage streams, as the Apache proxy does: a status frame, then one
// frame per message, then the delivery timestamp; the stream always ends
// with gRPC OK. Messages that cannot be written to the client are made
// visible again.
func (s *Service) ReceiveMessage(req *v2.ReceiveMessageRequest, stream v2.MessagingService_ReceiveMessageServer) error {
	var msgs []domain.StoredMessage
	var group string
	st := s.streamStatus(stream.Context(), kindPoll, req, func(ctx context.Context, info ports.RequestInfo) error {
		group = resourceName(req.GetGroup(), info)
		r := application.ReceiveRequest{
			Group:      group,
			Topic:      resourceName(req.GetMessageQueue().GetTopic(), info),
			BrokerName: req.GetMessageQueue().GetBroker().GetName(),
			QueueID:    req.GetMessageQueue().GetId(),
			Filter:     toFilterExpression(req.GetFilterExpression()),
			BatchSize:  req.GetBatchSize(),
			AutoRenew:  req.GetAutoRenew(),
			AttemptID:  req.GetAttemptId(),
		}
		var err error
		if r.InvisibleTime, err = durationField(req.GetInvisibleDuration(), domain.ReasonIllegalInvisibleTime, "invisible_duration"); err != nil {
			return err
		}
		if req.LongPollingTimeout != nil {
			d, err := durationField(req.GetLongPollingTimeout(), domain.ReasonIllegalPollingTime, "long_polling_timeout")
			if err != nil {
				return err
			}
			r.LongPollingTimeout = &d
		}
		msgs, err = s.app.ReceiveMessage(ctx, r)
		return err
	})
	release := func(rest []domain.StoredMessage) {
		_, ctx := s.callerInfo(stream.Context())
		s.logAnswered(ctx, group, st, msgs[:len(msgs)-len(rest)], rest)
		s.app.Release(ctx, group, rest)
	}
	if st.GetCode() != v2.Code_OK && len(msgs) > 0 {
		// Received, then refused (the principal was revoked meanwhile):
		// the messages go back, the client gets the status only.
		release(msgs)
		msgs = nil
	}
	out := s.frameSender(stream)
	if err := out.send(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Status{Status: st}}); err != nil {
		release(msgs)
		return nil
	}
	for i := range msgs {
		if err := out.send(messageFrame(&msgs[i])); err != nil {
			release(msgs[i:])
			return nil
		}
	}
	err := out.send(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_DeliveryTimestamp{DeliveryTimestamp: timestamppb.New(time.Now())}})
	if len(msgs) > 0 && s.log.Enabled(stream.Context(), slog.LevelDebug) {
		_, ctx := s.callerInfo(stream.Context())
		s.logAnswered(ctx, group, st, msgs, nil, slog.Any("last_frame_error", err))
	}
	return nil
}

// logAnswered logs at DEBUG what a receive answered: the messages written
// to the client's stream (sent) and those released because the stream
// failed (released), by id.
func (s *Service) logAnswered(ctx context.Context, group string, st *v2.Status, sent, released []domain.StoredMessage, attrs ...slog.Attr) {
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	ids := func(ms []domain.StoredMessage) string {
		var b strings.Builder
		for i := range ms {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(ms[i].ID)
		}
		return b.String()
	}
	info := ports.RequestInfoFrom(ctx)
	attrs = append(attrs, slog.String("client_id", info.ClientID), slog.String("consumer_group", group), slog.String("status", st.GetCode().String()),
		slog.String("sent_msg_ids", ids(sent)), slog.String("released_msg_ids", ids(released)))
	if p, ok := peer.FromContext(ctx); ok {
		attrs = append(attrs, slog.String("remote_addr", p.Addr.String()))
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "receive answered", attrs...)
}

// frameSender writes the frames of one server-streaming answer. gRPC's
// Send waits, with no time limit of its own, until the transport has room
// for the frame, which a client that does not read (its HTTP/2
// flow-control window stays shut) never makes; a client that sends no
// deadline would then hold the handler and the messages not yet written (a
// whole receive batch, kept invisible and renewed) for as long as it keeps
// the connection. A frame that waits grpc.responseWriteTimeout while less
// than minWriteProgress was written to the client's connection closes it
// instead, which ends the Send with an error. A client on a slow link,
// which reads all the time, goes on: a 4 MiB message takes longer than
// 30 s below some 140 KB/s, and its connection was closed as one that
// does not read, its messages delivered again to be cut off the same way.
// One timer serves all the frames of the answer.
type frameSender struct {
	s      *Service
	ctx    context.Context
	stream grpclib.ServerStream
	addr   net.Addr // the client's; nil before the first frame

	mu      sync.Mutex
	stall   *time.Timer // armed while a frame is written; nil before the first
	writing bool        // a frame is being written
	mark    int64       // the bytes written to the connection when the wait began or last progressed
	waits   int         // timeouts the frame being written has waited
}

// minWriteProgress is the least a connection must be written within
// grpc.responseWriteTimeout while a frame waits (one HTTP/2 DATA frame):
// the pings and window updates of an idle connection are less.
const minWriteProgress = 16 << 10

// maxFrameWaits bounds how many grpc.responseWriteTimeouts one frame may
// take, progress or not: the progress counted is the connection's, so a
// client that leaves one stream unread while it reads others on the same
// connection would otherwise hold the unread stream's messages until its
// deadline, or for ever without one. Ten times 30 s lets a 4 MiB message
// through a link of some 14 KB/s.
const maxFrameWaits = 10

func (s *Service) frameSender(stream grpclib.ServerStream) *frameSender {
	return &frameSender{s: s, ctx: stream.Context(), stream: stream}
}

// send writes one frame.
func (f *frameSender) send(frame any) error {
	s := f.s
	if s.closeConn == nil || s.connWritten == nil || s.cfg.ResponseWriteTimeout <= 0 {
		return f.stream.SendMsg(frame)
	}
	if f.addr == nil {
		p, ok := peer.FromContext(f.ctx)
		if !ok {
			return f.stream.SendMsg(frame)
		}
		f.addr = p.Addr
	}
	f.mu.Lock()
	f.writing, f.mark, f.waits = true, s.connWritten(f.addr), 0
	if f.stall == nil {
		f.stall = time.AfterFunc(s.cfg.ResponseWriteTimeout, f.waited)
	} else {
		f.stall.Reset(s.cfg.ResponseWriteTimeout)
	}
	f.mu.Unlock()
	err := f.stream.SendMsg(frame)
	f.mu.Lock()
	f.writing = false
	f.stall.Stop()
	f.mu.Unlock()
	return err
}

// waited runs when a frame has waited grpc.responseWriteTimeout: it waits
// again if the connection made progress meanwhile (at most maxFrameWaits
// times in all), else closes it.
func (f *frameSender) waited() {
	s := f.s
	f.mu.Lock()
	if !f.writing {
		f.mu.Unlock()
		return
	}
	f.waits++
	if n := s.connWritten(f.addr); n-f.mark >= minWriteProgress && f.waits < maxFrameWaits {
		f.mark = n
		f.stall.Reset(s.cfg.ResponseWriteTimeout)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	if s.closeConn(f.addr) {
		s.log.LogAttrs(f.ctx, slog.LevelWarn, "closed the connection of a client that did not read its answer within grpc.responseWriteTimeout",
			slog.String("remote_addr", f.addr.String()), slog.Duration("timeout", s.cfg.ResponseWriteTimeout))
	}
}

// PullMessage streams, as the protocol defines: a status frame, one frame
// per message (only with status OK), then the offset to pull from next. A
// pull that a shutdown cut short (answered MESSAGE_NOT_FOUND) names the
// offset it was asked for: the pull read nothing, and the client goes on
// from there.
func (s *Service) PullMessage(req *v2.PullMessageRequest, stream v2.MessagingService_PullMessageServer) error {
	res := ports.PullResult{NextOffset: req.GetOffset()}
	st := s.streamStatus(stream.Context(), kindPoll, req, func(ctx context.Context, info ports.RequestInfo) error {
		r := application.PullRequest{
			Group:     resourceName(req.GetGroup(), info),
			Queue:     queueRef(req.GetMessageQueue(), info),
			Offset:    req.GetOffset(),
			BatchSize: req.GetBatchSize(),
			Filter:    toFilterExpression(req.GetFilterExpression()),
		}
		if req.LongPollingTimeout != nil {
			d, err := durationField(req.GetLongPollingTimeout(), domain.ReasonIllegalPollingTime, "long_polling_timeout")
			if err != nil {
				return err
			}
			r.LongPollingTimeout = &d
		}
		pulled, err := s.app.PullMessage(ctx, r)
		if err != nil {
			return err
		}
		res = pulled
		if len(res.Messages) == 0 {
			return domain.Errorf(domain.ReasonMessageNotFound, "no new message")
		}
		return nil
	})
	if st.GetCode() != v2.Code_OK {
		// Read, then refused (the principal was revoked meanwhile): the
		// client gets the status only. A pull holds nothing to release.
		res.Messages = nil
	}
	out := s.frameSender(stream)
	if err := out.send(&v2.PullMessageResponse{Content: &v2.PullMessageResponse_Status{Status: st}}); err != nil {
		return nil
	}
	for i := range res.Messages {
		if err := out.send(&v2.PullMessageResponse{Content: &v2.PullMessageResponse_Message{Message: toProtoMessage(&res.Messages[i])}}); err != nil {
			return nil
		}
	}
	if st.GetCode() == v2.Code_OK || st.GetCode() == v2.Code_MESSAGE_NOT_FOUND {
		_ = out.send(&v2.PullMessageResponse{Content: &v2.PullMessageResponse_NextOffset{NextOffset: res.NextOffset}})
	}
	return nil
}

// messageFrame is the frame of a receive's answer that carries m: the
// frame, its content and the message (see toProtoMessage) in one
// allocation.
func messageFrame(m *domain.StoredMessage) *v2.ReceiveMessageResponse {
	f := &struct {
		resp    v2.ReceiveMessageResponse
		content v2.ReceiveMessageResponse_Message
		msg     protoMessage
	}{}
	fillProtoMessage(&f.msg, m)
	f.content.Message = &f.msg.msg
	f.resp.Content = &f.content
	return &f.resp
}
