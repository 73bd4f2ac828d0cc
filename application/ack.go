package application

import (
	"context"
	"errors"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// AckEntry is one message to acknowledge.
type AckEntry struct {
	MessageID     string
	ReceiptHandle string
}

// AckMessage acknowledges messages of one topic for a group. A request-wide
// problem (bad topic or group, no entry) is returned as the error; otherwise
// the result holds one error (nil for success) per entry, in order.
func (m *Messaging) AckMessage(ctx context.Context, group, topic string, entries []AckEntry) ([]error, error) {
	if err := m.ownClient(ctx, "AckMessage", group, topic); err != nil {
		return nil, err
	}
	if err := domain.ValidateTopicName(topic); err != nil {
		return nil, err
	}
	if err := domain.ValidateGroupName(group); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "no entry to acknowledge")
	}
	// One broker call for all entries: their records share the wait for
	// durability (one group commit instead of one fsync per entry).
	var results []error
	var reqs []ports.AckRequest
	if len(entries) == 1 { // the usual ack: both in one allocation
		one := new(ackOne)
		results, reqs = one.result[:], one.req[:0]
	} else {
		results, reqs = make([]error, len(entries)), make([]ports.AckRequest, 0, len(entries))
	}
	idx := make([]int, 0, len(entries))
	var taken []*heldMessage // by reqs' index; nil while no delivery was taken
	for i, e := range entries {
		// Whether the handle's invisible time has ended is the broker's
		// to say (see [ports.Broker.Ack]): a push consumer's handle of a
		// delivery the proxy renewed before a restart looks expired, but
		// the local broker still holds the delivery under it.
		h, hm, err := m.resolveHandle(ctx, group, e.MessageID, e.ReceiptHandle)
		if err != nil {
			results[i] = err
			continue
		}
		if hm != nil && taken == nil {
			taken = make([]*heldMessage, len(entries))
		}
		if taken != nil {
			taken[len(reqs)] = hm
		}
		reqs = append(reqs, ports.AckRequest{Group: group, Topic: topic, MessageID: e.MessageID, Handle: h})
		idx = append(idx, i)
	}
	if len(reqs) > 0 {
		gaveBack := false
		for j, err := range m.broker.AckBatch(ctx, reqs) {
			results[idx[j]] = err
			if taken != nil && m.giveBackOnFailure(ctx, group, reqs[j].MessageID, taken[j], err) {
				gaveBack = true
			}
		}
		if gaveBack {
			m.releaseIfGone(ctx, group)
		}
	}
	return results, nil
}

// giveBackOnFailure renews again a delivery taken from the renewals (hm;
// nil for none) for a request the broker did not carry out (err), unless
// the broker refused its handle, and reports whether it did: the official
// push consumers try a failed ack or dead-letter forward again a second
// later with the handle they received, which only the renewals can
// replace with the latest one (see [Renewer.giveBack]). The caller then
// calls releaseIfGone.
func (m *Messaging) giveBackOnFailure(ctx context.Context, group, messageID string, hm *heldMessage, err error) bool {
	if err == nil || hm == nil || domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		return false
	}
	m.renewer.giveBack(ports.RequestInfoFrom(ctx).ClientID, group, messageID, hm)
	return true
}

// releaseIfGone releases what the client of ctx holds in group if it left
// meanwhile (a delivery given back after its session ended), as the rest
// of what it held was released.
func (m *Messaging) releaseIfGone(ctx context.Context, group string) {
	if clientID := ports.RequestInfoFrom(ctx).ClientID; !m.sessions.known(clientID) {
		m.renewer.release(context.WithoutCancel(ctx), clientID, group)
	}
}

// ackOne holds the result and the broker request of an ack of one entry.
type ackOne struct {
	result [1]error
	req    [1]ports.AckRequest
}

// ownClient refuses a request naming a client id that another user
// registered (see [Sessions]): the proxy renews a push consumer's
// deliveries under its client id and resolveHandle stops that renewal, so
// a user naming another's client could make that client's delivery of a
// topic he may not read come again.
func (m *Messaging) ownClient(ctx context.Context, op, group, topic string) error {
	_, _, err := m.sessions.owned(ports.RequestInfoFrom(ctx).ClientID, userOf(ctx))
	return m.foreignClient(ctx, op, err, func() []domain.AccessRequest { return consumerAccess(ctx, group, topic) })
}

// resolveHandle decodes a client's receipt handle and, if the proxy is
// renewing that delivery for the client, stops renewing it and returns the
// latest handle instead.
// The delivery it took from the renewals, if any, is returned too (see
// [Renewer.giveBack]).
func (m *Messaging) resolveHandle(ctx context.Context, group, messageID, handle string) (domain.ReceiptHandle, *heldMessage, error) {
	h, err := domain.ParseReceiptHandle(handle)
	if err != nil {
		return domain.ReceiptHandle{}, nil, err
	}
	h, hm := m.renewer.take(ports.RequestInfoFrom(ctx).ClientID, group, messageID, h)
	return h, hm, nil
}

// ChangeInvisibleDuration makes a received message visible again after d
// (0 = now) and returns the receipt handle that replaces the given one.
func (m *Messaging) ChangeInvisibleDuration(ctx context.Context, group, topic, messageID, handle string, d time.Duration) (string, error) {
	if err := m.ownClient(ctx, "ChangeInvisibleDuration", group, topic); err != nil {
		return "", err
	}
	if err := domain.ValidateTopicName(topic); err != nil {
		return "", err
	}
	if err := domain.ValidateGroupName(group); err != nil {
		return "", err
	}
	if err := m.checkInvisibleTime(d, 0); err != nil {
		return "", err
	}
	// As for an ack, whether the handle's invisible time has ended is the
	// broker's to say: a push consumer nacks with the handle it received,
	// which looks expired after the proxy renewed the delivery and then
	// forgot the renewals (a restart), while the local broker still holds
	// the delivery under it.
	h, hm, err := m.resolveHandle(ctx, group, messageID, handle)
	if err != nil {
		return "", err
	}
	nh, err := m.broker.ChangeInvisible(ctx, ports.ChangeInvisibleRequest{
		AckRequest:    ports.AckRequest{Group: group, Topic: topic, MessageID: messageID, Handle: h},
		InvisibleTime: d,
	})
	if err != nil {
		// Not carried out: the push consumer tries its nack again with
		// the handle it received, which must still lead to the latest
		// renewed one, renewed meanwhile (as for an ack or a forward).
		if m.giveBackOnFailure(ctx, group, messageID, hm, err) {
			m.releaseIfGone(ctx, group)
		}
		return "", err
	}
	return nh.String(), nil
}

// ForwardToDeadLetterQueue moves a received message to the group's
// dead-letter queue, as a consumer does when it gives up on a message.
func (m *Messaging) ForwardToDeadLetterQueue(ctx context.Context, group, topic, messageID, handle string) error {
	if err := m.ownClient(ctx, "ForwardMessageToDeadLetterQueue", group, topic); err != nil {
		return err
	}
	if err := domain.ValidateTopicName(topic); err != nil {
		return err
	}
	if err := domain.ValidateGroupName(group); err != nil {
		return err
	}
	h, hm, err := m.resolveHandle(ctx, group, messageID, handle)
	if err != nil {
		return err
	}
	if h.CommitLogOffset < 0 {
		return domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle has no commit log offset; pass the handle of a received message unchanged")
	}
	err = m.broker.ForwardToDeadLetter(ctx, ports.AckRequest{Group: group, Topic: topic, MessageID: messageID, Handle: h})
	var refused *ports.ForwardRefusedError
	if !errors.As(err, &refused) {
		if m.giveBackOnFailure(ctx, group, messageID, hm, err) {
			m.releaseIfGone(ctx, group)
		}
		return err
	}
	// A handle naming no message of the request's group and topic (made
	// up, or taken from another consumer to have the broker copy another
	// topic's message into this group's dead-letter queue): nothing was
	// moved, and who tried it is recorded.
	if p, ok := PrincipalFrom(ctx); ok && m.security != nil {
		_ = m.security.Refuse(ctx, p, "ForwardMessageToDeadLetterQueue", refused.Reason, consumerAccess(ctx, group, topic)...)
	}
	return refused.Err
}

// consumerAccess returns, for the audit log, the accesses a consumer's
// request for group and topic asks for (Sub on each it names) when a
// refusal no policy decided records them.
func consumerAccess(ctx context.Context, group, topic string) []domain.AccessRequest {
	return requestAccess(ctx, group, domain.ActionSub, topic)
}

// requestAccess returns, for the audit log, the accesses a request naming
// group (Sub; "" for none) and topics (acts) asks for.
func requestAccess(ctx context.Context, group string, acts domain.Action, topics ...string) []domain.AccessRequest {
	ip := ports.RequestInfoFrom(ctx).RemoteAddr.Addr()
	if ip.IsValid() {
		ip = ip.Unmap()
	}
	a := domain.AccessRequests{SourceIP: ip}
	if group != "" {
		a.Add(domain.GroupResource(group), domain.ActionSub)
	}
	for _, t := range topics {
		if t != "" {
			a.Add(domain.TopicResource(t), acts)
		}
	}
	return a.List
}
