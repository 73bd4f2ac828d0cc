package cluster

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// TestForwardBeyondTheCommitLogIsAForgedHandle: a dead-letter forward
// whose receipt handle's commit-log offset lies beyond the broker's
// commit log (a made-up handle) is answered VIEW_MESSAGE_BY_ID with
// SYSTEM_ERROR "can not find message by the offset, N" (5.x brokers,
// QueryMessageProcessor.viewMessageById), which rmqproxy passed on as a
// broker error (INTERNAL_SERVER_ERROR) and the application did not audit.
// It is refused as forged_handle (INVALID_RECEIPT_HANDLE, audited by the
// application), as a handle whose offset holds no message is. Other
// answers to that read stay broker errors: NO_PERMISSION (rmqproxy's
// broker user lacks Get) names the permission missing, and a
// SYSTEM_ERROR with another remark is the broker's fault. Nothing is
// sent back or acked in any case.
func TestForwardBeyondTheCommitLogIsAForgedHandle(t *testing.T) {
	const offset = 1 << 40
	for _, tt := range []struct {
		name    string
		code    remoting.ResponseCode
		remark  string
		refused bool     // a *ports.ForwardRefusedError{forged_handle}
		says    []string // in the client's message
	}{
		{"offset beyond the commit log", remoting.ResponseSystemError, "can not find message by the offset, 1099511627776", true,
			[]string{"commit log offset", "no message"}},
		{"broker user without Get", remoting.ResponseNoPermission,
			"User:proxy has no permission to access Topic:T from 127.0.0.1, no matched policies.", false,
			[]string{"VIEW_MESSAGE_BY_ID", "Get on Topic:T", "cluster.acl.accessKey"}},
		{"another system error", remoting.ResponseSystemError, "store is broken", false, []string{"store is broken"}},
		{"the remark of another offset", remoting.ResponseSystemError, "can not find message by the offset, 4096", false,
			[]string{"can not find message by the offset, 4096"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var asked []remoting.RequestCode
			addr := startFakeBroker(t, func(_ string, req, resp *remoting.Command) *remoting.Command {
				mu.Lock()
				asked = append(asked, remoting.RequestCode(req.Code))
				mu.Unlock()
				if remoting.RequestCode(req.Code) == remoting.RequestViewMessageById {
					return remoting.NewResponse(req, tt.code, tt.remark)
				}
				return resp
			})
			b := newOnFakeSocket(t, addr, func(*Config) {})
			err := b.ForwardToDeadLetter(t.Context(), ports.AckRequest{Group: "G", Topic: "T", MessageID: "m",
				Handle: domain.ReceiptHandle{StartOffset: 5, RetrieveTime: 1000, InvisibleTime: 60000, BrokerName: "b1",
					QueueOffset: 5, CommitLogOffset: offset}})
			var refused *ports.ForwardRefusedError
			switch {
			case tt.refused:
				if !errors.As(err, &refused) || refused.Reason != ports.ForwardForgedHandle ||
					!domain.HasReason(refused.Err, domain.ReasonInvalidReceiptHandle) {
					t.Fatalf("forward: %v (%#v), want a forged_handle refusal answered INVALID_RECEIPT_HANDLE", err, err)
				}
			case errors.As(err, &refused):
				t.Fatalf("forward refused as %s (%v), want a broker error", refused.Reason, err)
			case !domain.HasReason(err, domain.ReasonBrokerError):
				t.Fatalf("forward: %v, want a broker error", err)
			}
			for _, w := range tt.says {
				if msg := domain.MessageOf(err); !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, c := range asked {
				if c == remoting.RequestConsumerSendMsgBack || c == remoting.RequestAckMessage {
					t.Errorf("the broker was asked %v after the read failed (asked %v)", c, asked)
				}
			}
		})
	}
}

// TestForwardOfAnExpiredHandleMovesNothing: a RocketMQ broker revives a
// pop checkpoint whose invisible time has ended whatever comes after it
// (see Broker.expiring), so a dead-letter forward of such a handle moved
// the message to the dead-letter queue (CONSUMER_SEND_MSG_BACK) while the
// broker delivered it again, and that delivery, forwarded too, put it
// there twice. Checked by the adapter's clock when the move is to be sent
// (after the read of the message), such a forward sends nothing and is
// answered OK: the redelivery decides. A handle with 100 ms left is still
// moved and acked (no margin, as for a client's change).
//
// An orderly pop's handle is moved and acked whatever time it shows: the
// broker keeps no checkpoint to revive, and takes the ack only while the
// handle's pop is the queue's latest, which the proxy's renewals keep (see
// expiredAck). A FIFO push consumer's forward with the handle it received,
// after the renewing instance was restarted or killed, moved nothing, and
// the message's queue stayed blocked until the renewed invisible time
// ended (a minute to an hour), where local mode moves it at once.
func TestForwardOfAnExpiredHandleMovesNothing(t *testing.T) {
	for _, c := range []struct {
		name    string
		left    time.Duration
		moved   bool
		orderly bool
	}{
		{"100 ms before the end", 100 * time.Millisecond, true, false},
		{"at the end", 0, false, false},
		{"a second after the end", -time.Second, false, false},
		{"expiring during the read", 5 * time.Second, false, false},
		{"orderly, a minute after the end", -time.Minute, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := clocktest.New(time.Now())
			var mu sync.Mutex
			var asked []remoting.RequestCode
			addr := startFakeBroker(t, func(_ string, req, resp *remoting.Command) *remoting.Command {
				mu.Lock()
				asked = append(asked, remoting.RequestCode(req.Code))
				mu.Unlock()
				if remoting.RequestCode(req.Code) != remoting.RequestViewMessageById {
					return resp
				}
				if c.name == "expiring during the read" {
					clock.Advance(10 * time.Second)
				}
				body, err := remoting.AppendMessage(nil, &remoting.Message{MagicCode: remoting.MagicV1, CommitLogOffset: 4096,
					BornHost: netip.MustParseAddrPort("10.0.0.1:1234"), StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"),
					Topic: "T", Body: []byte("b")})
				if err != nil {
					return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
				}
				resp.Body = body
				return resp
			})
			cfg := DefaultConfig()
			cfg.NameServers = []string{addr}
			cfg.BatchAck = false
			b, err := New(cfg, nil, clock)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close(context.Background()) })
			req := changeOf(clock, c.left, false).AckRequest
			if c.orderly {
				req.Handle.ReviveQueueID = remoting.OrderlyReviveQid
			}
			if err := b.ForwardToDeadLetter(t.Context(), req); err != nil {
				t.Fatalf("forward: %v, want OK", err)
			}
			mu.Lock()
			defer mu.Unlock()
			want := []remoting.RequestCode{remoting.RequestViewMessageById}
			if c.moved {
				want = append(want, remoting.RequestConsumerSendMsgBack, remoting.RequestAckMessage)
			}
			var got []remoting.RequestCode
			for _, code := range asked {
				if code != remoting.RequestGetBrokerClusterInfo {
					got = append(got, code)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("the broker was asked %v, want %v", got, want)
			}
		})
	}
}
