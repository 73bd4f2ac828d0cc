package grpc

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/domain"
)

// reuseMessageID is the message id of message n of
// TestConcurrentSendsGetTheirOwnAnswers.
func reuseMessageID(n int) string { return fmt.Sprintf("01%030X", n) }

// reuseBody is the body of message n: sizes below and above grpc-go's
// pooling threshold, so that requests arrive in pooled buffers too.
func reuseBody(n int) []byte {
	b := make([]byte, 1+(n*397)%3000)
	for i := range b {
		b[i] = byte(n*31 + i*7)
	}
	return b
}

// checkReuseMessage checks a message the broker got against what the
// client sent as message n.
func checkReuseMessage(m *domain.Message) error {
	n, err := strconv.Atoi(m.Properties["n"])
	if err != nil {
		return fmt.Errorf("message %s: property n %q", m.ID, m.Properties["n"])
	}
	if m.ID != reuseMessageID(n) || m.Topic != fmt.Sprintf("topic%d", n%3) || m.Tag != fmt.Sprintf("tag%d", n%5) ||
		len(m.Keys) != 1 || m.Keys[0] != fmt.Sprintf("key%d", n) || !bytes.Equal(m.Body, reuseBody(n)) {
		return fmt.Errorf("message %d reached the broker as id %s topic %s tag %s keys %v, %d bytes (equal body: %v)",
			n, m.ID, m.Topic, m.Tag, m.Keys, len(m.Body), bytes.Equal(m.Body, reuseBody(n)))
	}
	return nil
}

// TestConcurrentSendsGetTheirOwnAnswers: many clients send at once
// through the server's codec (requests decoded by sendpb from buffers
// grpc-go reuses, answers encoded into pooled buffers it frees once
// written): the broker gets each message as sent, the messages it keeps
// stay intact after every request has ended (nothing aliases a reused
// receive buffer), and each client gets the answer to its own request,
// small (one message) or above the pooling threshold (many).
func TestConcurrentSendsGetTheirOwnAnswers(t *testing.T) {
	var (
		mu   sync.Mutex
		kept []*domain.Message
	)
	b := &fakeBroker{}
	b.send = func(_ context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
		out := make([]domain.SendReceipt, len(msgs))
		for i := range msgs {
			m := &msgs[i]
			if err := checkReuseMessage(m); err != nil {
				return nil, domain.Errorf(domain.ReasonInternal, "%v", err)
			}
			n, _ := strconv.Atoi(m.Properties["n"])
			out[i] = domain.SendReceipt{MessageID: m.ID, QueueID: q.QueueID, QueueOffset: int64(n)}
			mu.Lock()
			kept = append(kept, m)
			mu.Unlock()
		}
		return out, nil
	}
	ts := startTestServer(t, b)
	ctx := clientCtx(t.Context(), "c1")
	const clients, sends = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range sends {
				first := (c*sends + s) * 64
				count := 1
				if s%8 == 7 {
					count = 40 // an answer above 1 KiB
				}
				topic := fmt.Sprintf("topic%d", first%3)
				req := &v2.SendMessageRequest{}
				for n := first; n < first+count; n++ {
					if n%3 != first%3 {
						continue // one topic per request
					}
					req.Messages = append(req.Messages, &v2.Message{
						Topic:          &v2.Resource{Name: topic},
						Body:           reuseBody(n),
						UserProperties: map[string]string{"n": strconv.Itoa(n)},
						SystemProperties: &v2.SystemProperties{
							MessageId: reuseMessageID(n), Tag: ptr(fmt.Sprintf("tag%d", n%5)), Keys: []string{fmt.Sprintf("key%d", n)},
							MessageType: v2.MessageType_NORMAL, BodyEncoding: v2.Encoding_IDENTITY, BornTimestamp: timestamppb.Now(), BornHost: "127.0.0.1",
						},
					})
				}
				resp, err := ts.client.SendMessage(ctx, req)
				if err != nil || resp.GetStatus().GetCode() != v2.Code_OK || len(resp.GetEntries()) != len(req.Messages) {
					errs <- fmt.Errorf("send of %d messages from %d: %v, %v", len(req.Messages), first, resp.GetStatus(), err)
					return
				}
				for i, e := range resp.GetEntries() {
					n, _ := strconv.Atoi(req.Messages[i].UserProperties["n"])
					if e.GetMessageId() != reuseMessageID(n) || e.GetOffset() != int64(n) || e.GetStatus().GetCode() != v2.Code_OK {
						errs <- fmt.Errorf("answer entry %d to the send of message %d: id %s offset %d status %v",
							i, n, e.GetMessageId(), e.GetOffset(), e.GetStatus())
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every request has ended and its buffers went back to grpc-go's pool
	// (and were reused by later requests): what the broker kept is intact.
	mu.Lock()
	defer mu.Unlock()
	for _, m := range kept {
		if err := checkReuseMessage(m); err != nil {
			t.Fatalf("after the requests ended: %v", err)
		}
	}
	t.Logf("%d messages sent", len(kept))
}
