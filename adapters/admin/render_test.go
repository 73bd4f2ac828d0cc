package admin_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func TestPrintTables(t *testing.T) {
	topics := []domain.Topic{
		{Name: "orders", Type: domain.MessageTypeFIFO, QueueCount: 8, Permission: domain.PermReadWrite, Description: "line one\nline\ttwo"},
		{Name: "a-much-longer-topic-name", Type: domain.MessageTypeNormal, QueueCount: 16, Permission: domain.PermRead},
	}
	exp := domain.NewConsumerGroup("billing")
	exp.RetryPolicy = domain.RetryPolicy{Initial: time.Second, Max: 2 * time.Hour, Multiplier: 2}
	groups := []domain.ConsumerGroup{domain.NewConsumerGroup("audit"), exp}
	stats := []ports.QueueStats{{Topic: "orders", QueueID: 0, MaxOffset: 10, AckOffset: 4, InFlight: 2, Consumable: 4, ConsumedUpTo: time.Date(2026, 12, 7, 22, 3, 5, 0, time.FixedZone("CET", 3600))}, {Topic: "orders", QueueID: 1, MaxOffset: 3, AckOffset: 3}}

	tests := []struct {
		name  string
		print func(*bytes.Buffer) error
		want  string
	}{
		{"topics", func(b *bytes.Buffer) error { return admin.PrintTopics(b, topics) },
			"NAME                      TYPE    QUEUES  PERMISSION  DESCRIPTION\n" +
				"orders                    FIFO    8       READ_WRITE  line one line two\n" +
				"a-much-longer-topic-name  NORMAL  16      READ        -\n"},
		{"no topics", func(b *bytes.Buffer) error { return admin.PrintTopics(b, nil) },
			"NAME  TYPE  QUEUES  PERMISSION  DESCRIPTION\n"},
		{"topic", func(b *bytes.Buffer) error {
			tp := topics[0]
			tp.CreatedAt = testNow
			return admin.PrintTopic(b, tp)
		},
			"Name:         orders\nType:         FIFO\nQueues:       8\nPermission:   READ_WRITE\nDescription:  line one line two\nCreated:      2026-01-02T03:04:05Z\nUpdated:      -\n"},
		{"groups", func(b *bytes.Buffer) error { return admin.PrintGroups(b, groups) },
			"NAME     MAX-ATTEMPTS  RETRY                                     ORDERLY  DESCRIPTION\n" +
				"audit    17            customized 1s,5s,10s,30s,... (18 delays)  false    -\n" +
				"billing  17            exponential 1s..2h x2                     false    -\n"},
		{"group", func(b *bytes.Buffer) error { return admin.PrintGroup(b, groups[0]) },
			"Name:                   audit\nMax delivery attempts:  17\n" +
				"Retry policy:           customized 1s,5s,10s,30s,1m,2m,3m,4m,5m,6m,7m,8m,9m,10m,20m,30m,1h,2h\n" +
				"Orderly:                false\nDescription:            -\nCreated:                -\nUpdated:                -\n"},
		{"stats", func(b *bytes.Buffer) error { return admin.PrintGroupStats(b, stats) },
			"TOPIC   QUEUE  MAX-OFFSET  ACK-OFFSET  IN-FLIGHT  CONSUMABLE  BACKLOG  CONSUMED-UP-TO\n" +
				"orders  0      10          4           2          4           6        2026-12-07T21:03:05Z\n" +
				"orders  1      3           3           0          0           0        -\n" +
				"TOTAL                                  2          4           6\n"},
		// A group with nothing to show printed the header alone, which
		// looked like a failure (README's group create, then group stats).
		{"stats of a group with no queues yet", func(b *bytes.Buffer) error { return admin.PrintGroupStats(b, nil) },
			"TOPIC  QUEUE  MAX-OFFSET  ACK-OFFSET  IN-FLIGHT  CONSUMABLE  BACKLOG  CONSUMED-UP-TO\n" +
				"no queues yet: a queue is listed once the group has received from it or a consumer of the group\n" +
				"connected to this proxy subscribes to its topic (local mode), or once a broker reports the\n" +
				"group's offsets (cluster mode).\n"},
		{"stats without in-flight counts", func(b *bytes.Buffer) error {
			return admin.PrintGroupStats(b, []ports.QueueStats{{Topic: "orders", QueueID: 0, MaxOffset: 10, AckOffset: 4, Consumable: 6, InFlightUnknown: true},
				{Topic: "orders", QueueID: 1, MaxOffset: 3, AckOffset: 3, InFlightUnknown: true}})
		},
			"TOPIC   QUEUE  MAX-OFFSET  ACK-OFFSET  IN-FLIGHT  CONSUMABLE  BACKLOG  CONSUMED-UP-TO\n" +
				"orders  0      10          4           ?          6           >=6      -\n" +
				"orders  1      3           3           ?          0           >=0      -\n" +
				"TOTAL                                  ?          6           >=6\n" +
				"IN-FLIGHT ?: the brokers do not report messages delivered and not yet acked; there ACK-OFFSET is the\n" +
				"offset up to which messages were delivered, and CONSUMABLE counts the messages never delivered.\n"},
		// Two brokers' queue 0 of one topic were two rows "orders 0".
		{"stats of queues on two brokers", func(b *bytes.Buffer) error {
			return admin.PrintGroupStats(b, []ports.QueueStats{{Topic: "orders", Broker: "broker-a", MaxOffset: 3, AckOffset: 3, InFlightUnknown: true},
				{Topic: "orders", Broker: "broker-b", MaxOffset: 5, AckOffset: 2, Consumable: 3, InFlightUnknown: true}})
		},
			"TOPIC   BROKER    QUEUE  MAX-OFFSET  ACK-OFFSET  IN-FLIGHT  CONSUMABLE  BACKLOG  CONSUMED-UP-TO\n" +
				"orders  broker-a  0      3           3           ?          0           >=0      -\n" +
				"orders  broker-b  0      5           2           ?          3           >=3      -\n" +
				"TOTAL                                            ?          3           >=3\n" +
				"IN-FLIGHT ?: the brokers do not report messages delivered and not yet acked; there ACK-OFFSET is the\n" +
				"offset up to which messages were delivered, and CONSUMABLE counts the messages never delivered.\n"},
		// An orderly group's rows (cluster mode) were under that note,
		// which says nothing was delivered from a queue blocked by a held
		// message; its consumable count includes what is in flight.
		{"stats of an orderly group without in-flight counts", func(b *bytes.Buffer) error {
			return admin.PrintGroupStats(b, []ports.QueueStats{{Topic: "orders", QueueID: 0, MaxOffset: 5, Consumable: 5, InFlightUnknown: true, InFlightInConsumable: true}})
		},
			"TOPIC   QUEUE  MAX-OFFSET  ACK-OFFSET  IN-FLIGHT  CONSUMABLE  BACKLOG  CONSUMED-UP-TO\n" +
				"orders  0      5           0           ?          5           5        -\n" +
				"IN-FLIGHT ? with an exact BACKLOG (an orderly group): ACK-OFFSET is the offset up to which messages\n" +
				"were acked, and CONSUMABLE counts every message not acked, delivered (in flight) or not.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.print(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestPrintJSON(t *testing.T) {
	topic := domain.Topic{Name: "t", Type: domain.MessageTypeDelay, QueueCount: 2, Permission: domain.PermWrite}
	group := domain.ConsumerGroup{Name: "g", MaxDeliveryAttempts: 3, RetryPolicy: domain.RetryPolicy{Delays: []time.Duration{time.Second, 90 * time.Minute}}}
	tests := []struct {
		v    any
		want string
	}{
		{topic, `{"name":"t","type":"DELAY","queueCount":2,"permission":"WRITE"}`},
		{[]domain.Topic{topic}, `{"topics":[{"name":"t","type":"DELAY","queueCount":2,"permission":"WRITE"}]}`},
		{[]domain.Topic{}, `{"topics":[]}`},
		{group, `{"name":"g","maxDeliveryAttempts":3,"retryPolicy":{"customized":["1s","1h30m"]},"orderly":false}`},
		{[]domain.ConsumerGroup{group}, `{"groups":[{"name":"g","maxDeliveryAttempts":3,"retryPolicy":{"customized":["1s","1h30m"]},"orderly":false}]}`},
		{[]ports.QueueStats{{Topic: "t", QueueID: 1, MaxOffset: 5}}, `[{"topic":"t","queueId":1,"maxOffset":5,"ackOffset":0,"inFlight":0,"consumable":0,"backlog":0}]`},
		// backlog is the table's BACKLOG: in flight + consumable.
		{[]ports.QueueStats{{Topic: "t", MaxOffset: 9, AckOffset: 2, InFlight: 3, Consumable: 4}}, `[{"topic":"t","queueId":0,"maxOffset":9,"ackOffset":2,"inFlight":3,"consumable":4,"backlog":7}]`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := admin.PrintJSON(&b, tt.v); err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b.Bytes()); err != nil {
			t.Fatal(err)
		}
		if compact.String() != tt.want {
			t.Errorf("%T: got %s, want %s", tt.v, compact.String(), tt.want)
		}
	}
	if err := admin.PrintJSON(&bytes.Buffer{}, 42); err == nil {
		t.Error("PrintJSON(42): no error")
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{`"10s"`: 10 * time.Second, `"1h30m"`: 90 * time.Minute, `"250ms"`: 250 * time.Millisecond} {
		var d admin.Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v", in, time.Duration(d), err)
		}
		out, _ := json.Marshal(d)
		if string(out) != in {
			t.Errorf("marshal %v = %s, want %s", want, out, in)
		}
	}
	for _, bad := range []string{`10`, `"10"`, `null`, `"soon"`, `{}`} {
		var d admin.Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil && bad != "null" {
			t.Errorf("%s: no error", bad)
		}
	}
}
