package grpc

import (
	"context"
	"log/slog"
	"net"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/internal/limitlog"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Service implements apache.rocketmq.v2.MessagingService over the
// application's use cases. Beyond the Apache proxy it serves PullMessage
// and the offset RPCs (UpdateOffset, GetOffset, QueryOffset) with the
// semantics of the protocol definition; SyncLiteSubscription is answered
// with gRPC UNIMPLEMENTED, as upstream.
type Service struct {
	v2.UnimplementedMessagingServiceServer

	app   *application.Messaging
	cfg   Config
	log   *slog.Logger
	admit *admission
	// port is the listener's port, advertised in routes.
	port int
	// shutdown ends long polls and Telemetry streams when the server stops.
	shutdown context.Context
	// sec and auth authenticate and authorize requests; nil until
	// UseSecurity.
	sec  *application.Security
	auth *authenticator
	// tel traces, measures and logs requests (see observe.go); nil until
	// UseTelemetry.
	tel *observe.Telemetry
	// traffic bounds each client's requests in flight and the send bytes
	// in flight; nil until UseTraffic.
	traffic *application.Traffic
	// closeConn closes the connection of a client address (set by
	// NewServer; nil without a server): see frameSender.
	closeConn func(net.Addr) bool
	// connWritten returns the bytes written so far to the connection of
	// a client address (set with closeConn): see frameSender.
	connWritten func(net.Addr) int64
	// requestReadTimeouts counts the calls ended for want of their
	// request between warnings (see awaitRequest).
	requestReadTimeouts refusals
	// brokerRefusals keeps the log of broker refusals to a line a minute
	// per refusal (see logRefusal).
	brokerRefusals limitlog.Limiter
	// throttles keeps the log of TOO_MANY_REQUESTS refusals to a line a
	// minute per limit (see logThrottled).
	throttles limitlog.Limiter
}

// UseTelemetry makes the server built on the service trace, measure and
// log requests as tel says. Call it before NewServer.
func (s *Service) UseTelemetry(tel *observe.Telemetry) {
	s.tel = tel
	if tel.Measuring() {
		if err := s.admit.observe(tel.Metrics.Meter()); err != nil {
			s.log.Warn("cannot register the in-flight request gauges", slog.Any("error", err))
		}
	}
}

// UseTraffic makes the service refuse requests beyond traffic's per-client
// and in-flight bytes bounds with TOO_MANY_REQUESTS. (Its rate limits are
// applied by the use cases.)
func (s *Service) UseTraffic(t *application.Traffic) { s.traffic = t }

// UseSecurity makes the service authenticate and authorize requests with
// sec when sec.Enabled(), and always drop the metadata keys clients must
// not set (x-mq-authorization-ak, x-mq-channel-id, rpc-*).
func (s *Service) UseSecurity(sec *application.Security, cfg AuthConfig) {
	s.sec = sec
	s.auth = &authenticator{sec: sec, cfg: cfg, now: time.Now}
}

// NewService returns the MessagingService implementation.
func NewService(cfg Config, app *application.Messaging, log *slog.Logger) *Service {
	return &Service{app: app, cfg: cfg, log: log, admit: &admission{limit: int64(cfg.MaxInflightPerKind)}, shutdown: context.Background()}
}

func (s *Service) QueryRoute(ctx context.Context, req *v2.QueryRouteRequest) (*v2.QueryRouteResponse, error) {
	return unary(s, ctx, kindRoute, req, func(ctx context.Context) (*v2.QueryRouteResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		queues, err := s.app.QueryRoute(ctx, resourceName(req.GetTopic(), info))
		if err != nil {
			return nil, err
		}
		eps := advertisedEndpoints(req.GetEndpoints(), info.LocalAddr, s.port, s.cfg.UseEndpointPortFromRequest)
		resp := &v2.QueryRouteResponse{Status: okStatus()}
		for _, q := range queues {
			mq := &v2.MessageQueue{
				Topic:      req.GetTopic(),
				Id:         q.QueueID,
				Permission: toPermission(q.Permission),
				Broker:     &v2.Broker{Name: q.BrokerName, Id: 0, Endpoints: eps},
			}
			for _, t := range q.AcceptTypes {
				mq.AcceptMessageTypes = append(mq.AcceptMessageTypes, toProtoMessageType(t))
			}
			resp.MessageQueues = append(resp.MessageQueues, mq)
		}
		return resp, nil
	}, func(st *v2.Status) *v2.QueryRouteResponse { return &v2.QueryRouteResponse{Status: st} })
}

func (s *Service) QueryAssignment(ctx context.Context, req *v2.QueryAssignmentRequest) (*v2.QueryAssignmentResponse, error) {
	return unary(s, ctx, kindRoute, req, func(ctx context.Context) (*v2.QueryAssignmentResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		as, err := s.app.QueryAssignment(ctx, resourceName(req.GetTopic(), info), resourceName(req.GetGroup(), info))
		if err != nil {
			return nil, err
		}
		eps := advertisedEndpoints(req.GetEndpoints(), info.LocalAddr, s.port, s.cfg.UseEndpointPortFromRequest)
		resp := &v2.QueryAssignmentResponse{Status: okStatus()}
		for _, a := range as {
			resp.Assignments = append(resp.Assignments, &v2.Assignment{MessageQueue: &v2.MessageQueue{
				Topic:      req.GetTopic(),
				Id:         a.QueueID,
				Permission: toPermission(a.Permission),
				Broker:     &v2.Broker{Name: a.BrokerName, Id: 0, Endpoints: eps},
			}})
		}
		return resp, nil
	}, func(st *v2.Status) *v2.QueryAssignmentResponse { return &v2.QueryAssignmentResponse{Status: st} })
}

func (s *Service) SendMessage(ctx context.Context, req *v2.SendMessageRequest) (*v2.SendMessageResponse, error) {
	return unary(s, ctx, kindProducer, req, func(ctx context.Context) (*v2.SendMessageResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		if err := sameTopicResource(req.GetMessages()); err != nil {
			return nil, err
		}
		msgs := make([]domain.Message, len(req.GetMessages()))
		for i, m := range req.GetMessages() {
			msgs[i] = toDomainMessage(m, info)
		}
		receipts, err := s.app.SendMessage(ctx, msgs)
		if err != nil {
			return nil, err
		}
		return sendResponse(receipts), nil
	}, func(st *v2.Status) *v2.SendMessageResponse { return &v2.SendMessageResponse{Status: st} })
}

func (s *Service) AckMessage(ctx context.Context, req *v2.AckMessageRequest) (*v2.AckMessageResponse, error) {
	return unary(s, ctx, kindConsumer, req, func(ctx context.Context) (*v2.AckMessageResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		entries := make([]application.AckEntry, len(req.GetEntries()))
		for i, e := range req.GetEntries() {
			entries[i] = application.AckEntry{MessageID: e.GetMessageId(), ReceiptHandle: e.GetReceiptHandle()}
		}
		results, err := s.app.AckMessage(ctx, resourceName(req.GetGroup(), info), resourceName(req.GetTopic(), info), entries)
		if err != nil {
			return nil, err
		}
		if len(results) == 1 && results[0] == nil {
			return ackedOne(req.GetEntries()[0]), nil
		}
		resp := &v2.AckMessageResponse{}
		codes := map[v2.Code]bool{}
		for i, e := range req.GetEntries() {
			st := s.statusOf(ctx, results[i])
			codes[st.Code] = true
			resp.Entries = append(resp.Entries, &v2.AckMessageResultEntry{MessageId: e.GetMessageId(), ReceiptHandle: e.GetReceiptHandle(), Status: st})
		}
		resp.Status = commonStatus(codes)
		return resp, nil
	}, func(st *v2.Status) *v2.AckMessageResponse { return &v2.AckMessageResponse{Status: st} })
}

// ackAnswer is the answer to an ack of one entry that succeeded, with its
// status, entry and entry slice in one allocation (consumers mostly ack
// one message per request).
type ackAnswer struct {
	resp   v2.AckMessageResponse
	status v2.Status
	entry  v2.AckMessageResultEntry
	ptrs   [1]*v2.AckMessageResultEntry
}

// ackedOne answers an ack of e alone that succeeded: what the general path
// answers (the entry's status OK, and so the response's), with the status
// shared as sendResponse shares it (statuses are never changed once built).
func ackedOne(e *v2.AckMessageEntry) *v2.AckMessageResponse {
	a := &ackAnswer{}
	a.status.Code, a.status.Message = v2.Code_OK, v2.Code_OK.String()
	a.entry.MessageId, a.entry.ReceiptHandle, a.entry.Status = e.GetMessageId(), e.GetReceiptHandle(), &a.status
	a.ptrs[0] = &a.entry
	a.resp.Status, a.resp.Entries = &a.status, a.ptrs[:]
	return &a.resp
}

// commonStatus is the top-level status of a multi-entry response: the code
// every entry shares, or MULTIPLE_RESULTS.
func commonStatus(codes map[v2.Code]bool) *v2.Status {
	if len(codes) != 1 {
		return &v2.Status{Code: v2.Code_MULTIPLE_RESULTS, Message: v2.Code_MULTIPLE_RESULTS.String()}
	}
	for c := range codes {
		return &v2.Status{Code: c, Message: c.String()}
	}
	return nil
}

func (s *Service) ChangeInvisibleDuration(ctx context.Context, req *v2.ChangeInvisibleDurationRequest) (*v2.ChangeInvisibleDurationResponse, error) {
	// Every failure echoes the request's handle: the Go client overwrites
	// its handle with the response's even when the status is not OK.
	return unary(s, ctx, kindConsumer, req, func(ctx context.Context) (*v2.ChangeInvisibleDurationResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		d, err := durationField(req.GetInvisibleDuration(), domain.ReasonIllegalInvisibleTime, "invisible_duration")
		if err != nil {
			return nil, err
		}
		h, err := s.app.ChangeInvisibleDuration(ctx, resourceName(req.GetGroup(), info), resourceName(req.GetTopic(), info),
			req.GetMessageId(), req.GetReceiptHandle(), d)
		if err != nil {
			return nil, err
		}
		return &v2.ChangeInvisibleDurationResponse{Status: okStatus(), ReceiptHandle: h}, nil
	}, func(st *v2.Status) *v2.ChangeInvisibleDurationResponse {
		return &v2.ChangeInvisibleDurationResponse{Status: st, ReceiptHandle: req.GetReceiptHandle()}
	})
}

func (s *Service) ForwardMessageToDeadLetterQueue(ctx context.Context, req *v2.ForwardMessageToDeadLetterQueueRequest) (*v2.ForwardMessageToDeadLetterQueueResponse, error) {
	return unary(s, ctx, kindProducer, req, func(ctx context.Context) (*v2.ForwardMessageToDeadLetterQueueResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		err := s.app.ForwardToDeadLetterQueue(ctx, resourceName(req.GetGroup(), info), resourceName(req.GetTopic(), info),
			req.GetMessageId(), req.GetReceiptHandle())
		if err != nil {
			return nil, err
		}
		return &v2.ForwardMessageToDeadLetterQueueResponse{Status: okStatus()}, nil
	}, func(st *v2.Status) *v2.ForwardMessageToDeadLetterQueueResponse {
		return &v2.ForwardMessageToDeadLetterQueueResponse{Status: st}
	})
}

func (s *Service) Heartbeat(ctx context.Context, req *v2.HeartbeatRequest) (*v2.HeartbeatResponse, error) {
	return unary(s, ctx, kindClient, req, func(ctx context.Context) (*v2.HeartbeatResponse, error) {
		// A type the protocol does not define counts as none (converted
		// as it stands, 257 was a PRODUCER).
		if err := s.app.Heartbeat(ctx, resourceName(req.GetGroup(), ports.RequestInfoFrom(ctx)), clientTypes[req.GetClientType()]); err != nil {
			return nil, err
		}
		return &v2.HeartbeatResponse{Status: okStatus()}, nil
	}, func(st *v2.Status) *v2.HeartbeatResponse { return &v2.HeartbeatResponse{Status: st} })
}

func (s *Service) NotifyClientTermination(ctx context.Context, req *v2.NotifyClientTerminationRequest) (*v2.NotifyClientTerminationResponse, error) {
	return unary(s, ctx, kindClient, req, func(ctx context.Context) (*v2.NotifyClientTerminationResponse, error) {
		if err := s.app.NotifyClientTermination(ctx, resourceName(req.GetGroup(), ports.RequestInfoFrom(ctx))); err != nil {
			return nil, err
		}
		return &v2.NotifyClientTerminationResponse{Status: okStatus()}, nil
	}, func(st *v2.Status) *v2.NotifyClientTerminationResponse {
		return &v2.NotifyClientTerminationResponse{Status: st}
	})
}

func (s *Service) EndTransaction(ctx context.Context, req *v2.EndTransactionRequest) (*v2.EndTransactionResponse, error) {
	return unary(s, ctx, kindTransaction, req, func(ctx context.Context) (*v2.EndTransactionResponse, error) {
		err := s.app.EndTransaction(ctx, ports.EndTransactionRequest{
			Topic:         resourceName(req.GetTopic(), ports.RequestInfoFrom(ctx)),
			MessageID:     req.GetMessageId(),
			TransactionID: req.GetTransactionId(),
			Resolution:    toResolution(req.GetResolution()),
			FromCheck:     req.GetSource() == v2.TransactionSource_SOURCE_SERVER_CHECK,
		})
		if err != nil {
			return nil, err
		}
		return &v2.EndTransactionResponse{Status: okStatus()}, nil
	}, func(st *v2.Status) *v2.EndTransactionResponse { return &v2.EndTransactionResponse{Status: st} })
}

func toResolution(r v2.TransactionResolution) ports.Resolution {
	switch r {
	case v2.TransactionResolution_COMMIT:
		return ports.ResolutionCommit
	case v2.TransactionResolution_ROLLBACK:
		return ports.ResolutionRollback
	default:
		return ports.ResolutionUnknown
	}
}

func (s *Service) RecallMessage(ctx context.Context, req *v2.RecallMessageRequest) (*v2.RecallMessageResponse, error) {
	return unary(s, ctx, kindProducer, req, func(ctx context.Context) (*v2.RecallMessageResponse, error) {
		id, err := s.app.RecallMessage(ctx, resourceName(req.GetTopic(), ports.RequestInfoFrom(ctx)), req.GetRecallHandle())
		if err != nil {
			return nil, err
		}
		return &v2.RecallMessageResponse{Status: okStatus(), MessageId: id}, nil
	}, func(st *v2.Status) *v2.RecallMessageResponse { return &v2.RecallMessageResponse{Status: st} })
}

// queueRef names the queue of a request's MessageQueue.
func queueRef(mq *v2.MessageQueue, info ports.RequestInfo) domain.QueueRef {
	return domain.QueueRef{Topic: resourceName(mq.GetTopic(), info), BrokerName: mq.GetBroker().GetName(), QueueID: mq.GetId()}
}

func (s *Service) UpdateOffset(ctx context.Context, req *v2.UpdateOffsetRequest) (*v2.UpdateOffsetResponse, error) {
	return unary(s, ctx, kindConsumer, req, func(ctx context.Context) (*v2.UpdateOffsetResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		if err := s.app.UpdateOffset(ctx, resourceName(req.GetGroup(), info), queueRef(req.GetMessageQueue(), info), req.GetOffset()); err != nil {
			return nil, err
		}
		return &v2.UpdateOffsetResponse{Status: okStatus()}, nil
	}, func(st *v2.Status) *v2.UpdateOffsetResponse { return &v2.UpdateOffsetResponse{Status: st} })
}

func (s *Service) GetOffset(ctx context.Context, req *v2.GetOffsetRequest) (*v2.GetOffsetResponse, error) {
	return unary(s, ctx, kindConsumer, req, func(ctx context.Context) (*v2.GetOffsetResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		off, err := s.app.GetOffset(ctx, resourceName(req.GetGroup(), info), queueRef(req.GetMessageQueue(), info))
		if err != nil {
			return nil, err
		}
		return &v2.GetOffsetResponse{Status: okStatus(), Offset: off}, nil
	}, func(st *v2.Status) *v2.GetOffsetResponse { return &v2.GetOffsetResponse{Status: st} })
}

func (s *Service) QueryOffset(ctx context.Context, req *v2.QueryOffsetRequest) (*v2.QueryOffsetResponse, error) {
	return unary(s, ctx, kindConsumer, req, func(ctx context.Context) (*v2.QueryOffsetResponse, error) {
		info := ports.RequestInfoFrom(ctx)
		var policy ports.OffsetPolicy
		switch req.GetQueryOffsetPolicy() {
		case v2.QueryOffsetPolicy_BEGINNING:
			policy = ports.OffsetBeginning
		case v2.QueryOffsetPolicy_END:
			policy = ports.OffsetEnd
		case v2.QueryOffsetPolicy_TIMESTAMP:
			policy = ports.OffsetTimestamp
		default:
			return nil, domain.Errorf(domain.ReasonBadRequest, "unknown query offset policy %d", req.GetQueryOffsetPolicy())
		}
		var at time.Time
		if ts := req.GetTimestamp(); ts != nil && policy == ports.OffsetTimestamp {
			// An invalid Timestamp (outside 0001-01-01..9999-12-31, or bad
			// nanos) has no instant; its milliseconds could overflow.
			if err := ts.CheckValid(); err != nil {
				return nil, domain.Errorf(domain.ReasonBadRequest, "timestamp {seconds: %d, nanos: %d} is no valid Timestamp: %v", ts.GetSeconds(), ts.GetNanos(), err)
			}
			at = ts.AsTime()
		}
		off, err := s.app.QueryOffset(ctx, queueRef(req.GetMessageQueue(), info), policy, at)
		if err != nil {
			return nil, err
		}
		return &v2.QueryOffsetResponse{Status: okStatus(), Offset: off}, nil
	}, func(st *v2.Status) *v2.QueryOffsetResponse { return &v2.QueryOffsetResponse{Status: st} })
}

// sendAnswer is a SendMessageResponse for one message with its status,
// entry and entry slice in one allocation (most sends carry one message).
type sendAnswer struct {
	resp   v2.SendMessageResponse
	status v2.Status
	entry  [1]v2.SendResultEntry
	ptrs   [1]*v2.SendResultEntry
}

// sendResponse answers a successful send. The entries are allocated
// together and share the response's status (statuses are never changed
// once built).
func sendResponse(receipts []domain.SendReceipt) *v2.SendMessageResponse {
	var (
		resp    *v2.SendMessageResponse
		entries []v2.SendResultEntry
	)
	if len(receipts) == 1 {
		a := &sendAnswer{}
		a.status.Code, a.status.Message = v2.Code_OK, "OK"
		resp, entries = &a.resp, a.entry[:]
		resp.Status, resp.Entries = &a.status, a.ptrs[:]
	} else {
		resp = &v2.SendMessageResponse{Status: okStatus(), Entries: make([]*v2.SendResultEntry, len(receipts))}
		entries = make([]v2.SendResultEntry, len(receipts))
	}
	for i, r := range receipts {
		e := &entries[i]
		e.Status = resp.Status
		e.MessageId = r.MessageID
		e.TransactionId = r.TransactionID
		e.Offset = r.QueueOffset
		e.RecallHandle = r.RecallHandle
		resp.Entries[i] = e
	}
	return resp
}
