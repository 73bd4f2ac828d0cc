package grpc

import (
	"context"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
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
	// Long polling also ends when the server shuts down; the stream itself
	// stays writable so the client still gets a proper answer.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(s.shutdown, cancel)()
	var msgs []domain.StoredMessage
	var group string
	st := func() *v2.Status {
		info := requestInfo(ctx)
		if info.ClientID == "" {
			return &v2.Status{Code: v2.Code_CLIENT_ID_REQUIRED, Message: "client id cannot be empty: send the x-mq-client-id header"}
		}
		if !s.admit.enter(kindConsumer) {
			return &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "flow limit"}
		}
		defer s.admit.leave(kindConsumer)
		ctx = ports.WithRequestInfo(ctx, info)
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
		if req.InvisibleDuration != nil {
			r.InvisibleTime = req.GetInvisibleDuration().AsDuration()
		}
		if req.LongPollingTimeout != nil {
			d := req.GetLongPollingTimeout().AsDuration()
			r.LongPollingTimeout = &d
		}
		var err error
		msgs, err = s.app.ReceiveMessage(ctx, r)
		if err != nil && s.shutdown.Err() != nil && stream.Context().Err() == nil {
			return &v2.Status{Code: v2.Code_MESSAGE_NOT_FOUND, Message: "no new message: the proxy is shutting down"}
		}
		return statusOf(ctx, s.log, err)
	}()
	if err := stream.Send(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Status{Status: st}}); err != nil {
		s.app.Release(ports.WithRequestInfo(stream.Context(), requestInfo(stream.Context())), group, msgs)
		return nil
	}
	for i := range msgs {
		frame := &v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Message{Message: toProtoMessage(&msgs[i])}}
		if err := stream.Send(frame); err != nil {
			s.app.Release(ports.WithRequestInfo(stream.Context(), requestInfo(stream.Context())), group, msgs[i:])
			return nil
		}
	}
	_ = stream.Send(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_DeliveryTimestamp{DeliveryTimestamp: timestamppb.New(time.Now())}})
	return nil
}

// PullMessage streams, as the protocol defines: a status frame, one frame
// per message, then the offset to pull from next.
func (s *Service) PullMessage(req *v2.PullMessageRequest, stream v2.MessagingService_PullMessageServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(s.shutdown, cancel)()
	var res ports.PullResult
	st := func() *v2.Status {
		info := requestInfo(ctx)
		if info.ClientID == "" {
			return &v2.Status{Code: v2.Code_CLIENT_ID_REQUIRED, Message: "client id cannot be empty: send the x-mq-client-id header"}
		}
		if !s.admit.enter(kindConsumer) {
			return &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "flow limit"}
		}
		defer s.admit.leave(kindConsumer)
		ctx = ports.WithRequestInfo(ctx, info)
		r := application.PullRequest{
			Group:     resourceName(req.GetGroup(), info),
			Queue:     queueRef(req.GetMessageQueue(), info),
			Offset:    req.GetOffset(),
			BatchSize: req.GetBatchSize(),
			Filter:    toFilterExpression(req.GetFilterExpression()),
		}
		if req.LongPollingTimeout != nil {
			d := req.GetLongPollingTimeout().AsDuration()
			r.LongPollingTimeout = &d
		}
		var err error
		res, err = s.app.PullMessage(ctx, r)
		if err == nil && len(res.Messages) == 0 {
			return &v2.Status{Code: v2.Code_MESSAGE_NOT_FOUND, Message: "no new message"}
		}
		return statusOf(ctx, s.log, err)
	}()
	if err := stream.Send(&v2.PullMessageResponse{Content: &v2.PullMessageResponse_Status{Status: st}}); err != nil {
		return nil
	}
	for i := range res.Messages {
		if err := stream.Send(&v2.PullMessageResponse{Content: &v2.PullMessageResponse_Message{Message: toProtoMessage(&res.Messages[i])}}); err != nil {
			return nil
		}
	}
	if st.GetCode() == v2.Code_OK || st.GetCode() == v2.Code_MESSAGE_NOT_FOUND {
		_ = stream.Send(&v2.PullMessageResponse{Content: &v2.PullMessageResponse_NextOffset{NextOffset: res.NextOffset}})
	}
	return nil
}
