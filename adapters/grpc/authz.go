package grpc

import (
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// accessOf is the one table of what each MessagingService request needs
// (docs/security.md §4.6): the operation name for the audit log and the
// accesses, all of which must be allowed. Resource names are the
// broker-side names (namespace%name when the request has a namespace);
// retry and dead-letter topics are authorized as their consumer group.
// A request type missing here is "unmapped": it has no access a normal
// user could be granted, so it is denied to everyone but super users.
//
// Differences from the Apache proxy's table: SendMessage checks every
// topic of the batch (upstream only the first); ChangeInvisibleDuration
// also needs Sub on the topic; the RPCs upstream does not map (PullMessage,
// UpdateOffset, GetOffset, QueryOffset, SyncLiteSubscription) are mapped
// instead of passing unchecked.
func accessOf(req any, info ports.RequestInfo) (op string, reqs []domain.AccessRequest) {
	ip := info.RemoteAddr.Addr()
	if ip.IsValid() {
		ip = ip.Unmap()
	}
	a := domain.AccessRequests{SourceIP: ip}
	topic := func(r *v2.Resource, acts domain.Action) { addTopic(&a, resourceName(r, info), acts) }
	group := func(r *v2.Resource, acts domain.Action) { a.Add(domain.GroupResource(resourceName(r, info)), acts) }
	const sub = domain.ActionSub
	switch r := req.(type) {
	case *v2.QueryRouteRequest:
		op = "QueryRoute"
		topic(r.GetTopic(), domain.ActionPub|sub)
	case *v2.HeartbeatRequest:
		op = "Heartbeat"
		if r.GetClientType() != v2.ClientType_PRODUCER && r.GetGroup() != nil {
			group(r.GetGroup(), sub)
		}
	case *v2.SendMessageRequest:
		op = "SendMessage"
		for _, m := range r.GetMessages() {
			topic(m.GetTopic(), domain.ActionPub)
		}
	case *v2.EndTransactionRequest:
		op = "EndTransaction"
		topic(r.GetTopic(), domain.ActionPub)
	case *v2.RecallMessageRequest:
		op = "RecallMessage"
		topic(r.GetTopic(), domain.ActionPub)
	case *v2.ReceiveMessageRequest:
		op = "ReceiveMessage"
		group(r.GetGroup(), sub)
		topic(r.GetMessageQueue().GetTopic(), sub)
	case *v2.AckMessageRequest:
		op = "AckMessage"
		group(r.GetGroup(), sub)
		topic(r.GetTopic(), sub)
	case *v2.ForwardMessageToDeadLetterQueueRequest:
		op = "ForwardMessageToDeadLetterQueue"
		group(r.GetGroup(), sub)
		topic(r.GetTopic(), sub)
	case *v2.ChangeInvisibleDurationRequest:
		op = "ChangeInvisibleDuration"
		group(r.GetGroup(), sub)
		topic(r.GetTopic(), sub)
	case *v2.QueryAssignmentRequest:
		op = "QueryAssignment"
		group(r.GetGroup(), sub)
		topic(r.GetTopic(), sub)
	case *v2.NotifyClientTerminationRequest:
		op = "NotifyClientTermination"
		if r.GetGroup().GetName() != "" {
			group(r.GetGroup(), sub)
		}
	case *v2.PullMessageRequest:
		op = "PullMessage"
		group(r.GetGroup(), sub)
		topic(r.GetMessageQueue().GetTopic(), sub)
	case *v2.UpdateOffsetRequest:
		op = "UpdateOffset"
		group(r.GetGroup(), sub|domain.ActionUpdate)
		topic(r.GetMessageQueue().GetTopic(), sub|domain.ActionUpdate)
	case *v2.GetOffsetRequest:
		op = "GetOffset"
		group(r.GetGroup(), sub|domain.ActionGet)
		topic(r.GetMessageQueue().GetTopic(), sub|domain.ActionGet)
	case *v2.QueryOffsetRequest:
		op = "QueryOffset"
		topic(r.GetMessageQueue().GetTopic(), sub|domain.ActionGet)
	case *v2.SyncLiteSubscriptionRequest:
		op = "SyncLiteSubscription"
		group(r.GetGroup(), sub)
		topic(r.GetTopic(), sub)
	case *v2.Settings:
		// Telemetry: checked on every Settings command.
		op = "Telemetry"
		switch p := r.GetPubSub().(type) {
		case *v2.Settings_Publishing:
			for _, t := range p.Publishing.GetTopics() {
				topic(t, domain.ActionPub)
			}
		case *v2.Settings_Subscription:
			group(p.Subscription.GetGroup(), sub)
			for _, e := range p.Subscription.GetSubscriptions() {
				topic(e.GetTopic(), sub)
			}
		}
	default:
		return opUnmapped, nil
	}
	return op, a.List
}

// addTopic adds acts on a topic a gRPC request names. Retry and
// dead-letter topics need their group's Sub ([domain.AccessRequests.AddTopic]),
// and, where the group alone would say too much, the topic itself as
// well, as the Apache proxy authorizes them (the literal Topic:%RETRY%...,
// Topic:%DLQ%...):
//
//   - a retry topic always: a broker's pop retry topic %RETRY%G_T (or
//     %RETRY%G+T) holds the retried messages of topic T, and read as the
//     group "G_T" a group prefix grant (Group:G*) reached them without any
//     grant on T. No official gRPC client names a retry topic (the proxy
//     reads them with the topic), so this takes nothing from them;
//   - a dead-letter topic for a request that does not read it (a send):
//     the group's Sub lets its consumers read their dead letters, not put
//     made-up ones there.
func addTopic(a *domain.AccessRequests, name string, acts domain.Action) {
	a.AddTopic(name, acts)
	switch {
	case domain.IsRetryTopic(name), domain.IsDeadLetterTopic(name) && acts&domain.ActionSub == 0:
		a.Add(domain.TopicResource(name), acts)
	}
}

// opUnmapped names a request type the table does not know.
const opUnmapped = "unmapped"
