package cluster

import (
	"sync/atomic"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestGoAwaySendGoesToAnotherBroker: a broker in its shutdown grace period
// answers GO_AWAY without acting on the request, so a send it refused is
// stored on another broker at once (no duplicate is possible), and later
// sends avoid the broker while it is isolated.
func TestGoAwaySendGoesToAnotherBroker(t *testing.T) {
	var goAways, stored atomic.Int32
	b2 := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) != remoting.RequestSendMessageV2 {
			return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
		}
		var h remoting.SendMessageRequestHeader
		if err := h.DecodeFieldsV2(req.Fields); err != nil {
			return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
		}
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		sr := remoting.SendMessageResponseHeader{MsgID: "0A00000100002A9F0000000000000000", QueueID: h.QueueID, QueueOffset: int64(stored.Add(1) - 1)}
		resp.Fields = sr.AppendFields(nil)
		return resp
	})
	// b1 is also the NameServer.
	var b1 string
	b1 = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetTopicConfig:
			return topicConfigAnswer(req)
		case remoting.RequestSendMessageV2:
			goAways.Add(1)
			return remoting.NewResponse(req, remoting.ResponseGoAway, "please go away")
		}
		return twoBrokerNameServer(b1, b2)(req)
	})
	b := newOnFakeSocket(t, b1, func(*Config) {})
	for i := range 2 {
		m := domain.Message{Topic: "T", Body: []byte("body"), ID: "ID00000" + string(rune('0'+i))}
		if _, err := b.Send(t.Context(), domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 1}, []domain.Message{m}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if g, s := goAways.Load(), stored.Load(); g != 1 || s != 2 {
		t.Fatalf("b1 answered GO_AWAY %d times and b2 stored %d messages; want 1 and 2 (the refused send moved, the next one avoided b1)", g, s)
	}
}
