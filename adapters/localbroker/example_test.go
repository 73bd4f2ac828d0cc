package localbroker_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Open an engine without fx, send a message, receive it and acknowledge it.
func Example() {
	dir, _ := os.MkdirTemp("", "localbroker-example")
	defer os.RemoveAll(dir)
	cfg := localbroker.DefaultConfig()
	cfg.DataDir = dir
	ctx := context.Background()
	e, err := localbroker.Open(ctx, cfg, nil, ports.SystemClock{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close(ctx)

	if _, err := e.CreateTopic(ctx, domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 4}); err != nil {
		fmt.Println(err)
		return
	}
	q := domain.QueueRef{Topic: "orders", BrokerName: cfg.BrokerName, QueueID: 1}
	receipts, _ := e.Send(ctx, q, []domain.Message{{Topic: "orders", ID: "m-1", Body: []byte("hello")}})
	fmt.Println("stored at queue", receipts[0].QueueID, "offset", receipts[0].QueueOffset)

	msgs, _ := e.Pop(ctx, ports.PopRequest{Group: "billing", Topic: "orders", QueueID: -1, MaxMessages: 8, InvisibleTime: 30 * time.Second})
	for _, m := range msgs {
		fmt.Printf("got %s %q attempt %d\n", m.ID, m.Body, m.DeliveryAttempt)
		h, _ := domain.ParseReceiptHandle(m.ReceiptHandle)
		if err := e.Ack(ctx, ports.AckRequest{Group: "billing", Topic: "orders", MessageID: m.ID, Handle: h}); err != nil {
			fmt.Println(err)
		}
	}
	stats, _ := e.GroupStats(ctx, "billing")
	fmt.Println("ack offset", stats[0].AckOffset)
	// Output:
	// stored at queue 1 offset 0
	// got m-1 "hello" attempt 1
	// ack offset 1
}
