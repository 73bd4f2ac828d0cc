package cluster

import (
	"context"
	"math"
	"slices"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// LookupMessage implements [ports.MessageLookup] as mqadmin queryMsgById
// does for a message id: QUERY_MESSAGE with the unique-key flag to each
// broker of the topic's route, answered from the broker's index (built a
// moment after the message is stored, and only with the broker's
// messageIndexEnable, its default).
func (b *Broker) LookupMessage(ctx context.Context, topic, messageID string) (domain.StoredMessage, error) {
	route, err := b.Route(ctx, topic)
	if err != nil {
		return domain.StoredMessage{}, err
	}
	var brokers []string
	for _, q := range route.Queues {
		if !slices.Contains(brokers, q.BrokerName) {
			brokers = append(brokers, q.BrokerName)
		}
	}
	h := remoting.QueryMessageRequestHeader{Topic: topic, Key: messageID, MaxNum: 32, EndTimestamp: math.MaxInt64, UniqueKey: true}
	for _, name := range brokers {
		addr, err := b.queueBroker(ctx, domain.QueueRef{Topic: topic, BrokerName: name})
		if err != nil {
			return domain.StoredMessage{}, err
		}
		resp, err := b.call(ctx, addr, remoting.RequestQueryMessage, &h, nil, remoting.ResponseSuccess, remoting.ResponseQueryNotFound)
		if err != nil {
			return domain.StoredMessage{}, mapError(err)
		}
		if remoting.ResponseCode(resp.Code) != remoting.ResponseSuccess {
			continue
		}
		raw, err := remoting.DecodeMessages(resp.Body)
		if err != nil {
			return domain.StoredMessage{}, domain.Wrap(domain.ReasonBrokerError, err, "the broker's query answer could not be decoded")
		}
		for i := range raw {
			// The index is by hash: keep only the message asked for.
			if raw[i].Topic != topic || raw[i].MsgID() != messageID {
				continue
			}
			sm := storedMessage(&raw[i], topic, name)
			sm.DeliveryAttempt = 1
			return sm, nil
		}
	}
	return domain.StoredMessage{}, domain.Errorf(domain.ReasonMessageNotFound,
		"topic %s has no message with id %s in its brokers' index (a message is indexed a moment after it is stored)", topic, messageID)
}

var _ ports.MessageLookup = (*Broker)(nil)
