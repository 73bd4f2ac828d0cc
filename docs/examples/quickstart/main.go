// Command quickstart sends a message to rmqproxy and receives it with the
// official Go client. README.md shows this file as it is (a test keeps
// them equal); build it in a module of its own after
// go get github.com/apache/rocketmq-clients/golang/v5@v5.1.4.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
)

func main() {
	ctx := context.Background()
	endpoint := "127.0.0.1:8081"

	producer, err := rmq.NewProducer(&rmq.Config{Endpoint: endpoint}, rmq.WithTopics("orders"))
	if err != nil {
		log.Fatal(err)
	}
	if err := producer.Start(); err != nil {
		log.Fatal(err)
	}
	defer producer.GracefulStop()
	msg := &rmq.Message{Topic: "orders", Body: []byte("hello")}
	msg.SetTag("created")
	receipts, err := producer.Send(ctx, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", receipts[0].MessageID)

	consumer, err := rmq.NewSimpleConsumer(&rmq.Config{Endpoint: endpoint, ConsumerGroup: "billing"},
		rmq.WithSimpleAwaitDuration(5*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{"orders": rmq.SUB_ALL}))
	if err != nil {
		log.Fatal(err)
	}
	if err := consumer.Start(); err != nil {
		log.Fatal(err)
	}
	defer consumer.GracefulStop()
	views, err := consumer.Receive(ctx, 16, 30*time.Second) // invisible for 30s unless acked
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range views {
		fmt.Printf("received %s: %s\n", v.GetMessageId(), v.GetBody())
		if err := consumer.Ack(ctx, v); err != nil {
			log.Fatal(err)
		}
	}
}
