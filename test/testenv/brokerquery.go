package testenv

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// BrokerCall sends one Remoting request to a broker and returns its answer
// (a test's own client, straight to the broker, as admin tools talk to it).
type BrokerCall func(ctx context.Context, code remoting.RequestCode, h remoting.Header) (*remoting.Command, error)

// MessageOffsetID returns the offset message id of the message of topic
// whose unique id is id, as an admin tool finds it (QUERY_MESSAGE by unique
// key, what mqadmin queryMsgById does first). A broker indexes a message a
// little after storing it, so it asks again every 100 ms until ctx ends.
func MessageOffsetID(ctx context.Context, call BrokerCall, topic, id string) (string, error) {
	var offsetID string
	err := poll(ctx, func() error {
		resp, err := call(ctx, remoting.RequestQueryMessage, &remoting.QueryMessageRequestHeader{Topic: topic, Key: id, MaxNum: 32,
			EndTimestamp: math.MaxInt64, UniqueKey: true})
		if err != nil {
			return err
		}
		if resp.Code != int32(remoting.ResponseSuccess) {
			return fmt.Errorf("query %s: %d %s", id, resp.Code, resp.Remark)
		}
		msgs, err := remoting.DecodeMessages(resp.Body)
		if err != nil {
			return err
		}
		for i := range msgs {
			if msgs[i].MsgID() == id {
				offsetID = msgs[i].OffsetMsgID()
				return nil
			}
		}
		return fmt.Errorf("query %s: not among %d messages", id, len(msgs))
	})
	return offsetID, err
}

// SoleGroupClient returns the id of the one client a broker lists for
// group (the proxy, which registers every group of its clients). A broker
// learns the group from the proxy's heartbeat a little after a client
// connects, so it asks again every 100 ms until ctx ends.
func SoleGroupClient(ctx context.Context, call BrokerCall, group string) (string, error) {
	var id string
	err := poll(ctx, func() error {
		resp, err := call(ctx, remoting.RequestGetConsumerListByGroup, &remoting.ConsumerGroupRequestHeader{ConsumerGroup: group})
		if err != nil {
			return err
		}
		var l remoting.ConsumerListBody
		if resp.Code != int32(remoting.ResponseSuccess) || remoting.DecodeJSONBody(resp.Body, &l) != nil || len(l.ConsumerIDList) != 1 {
			return fmt.Errorf("consumers of group %s at the broker: %d %s %s", group, resp.Code, resp.Remark, resp.Body)
		}
		id = l.ConsumerIDList[0]
		return nil
	})
	return id, err
}

// poll runs f every 100 ms until it succeeds or ctx ends; then it returns
// f's last error.
func poll(ctx context.Context, f func() error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}
