package remoting_test

import (
	"bytes"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

func sendRequest(size int) *remoting.Command {
	h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: "broker-a"}, ProducerGroup: "PG", Topic: "TopicTest",
		DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: 1, BornTimestamp: 1700000000000,
		Properties: "UNIQ_KEY\x01AC110001000118B4AAC2000000000000\x02TAGS\x01TagA\x02WAIT\x01true\x02"}
	return &remoting.Command{Code: int32(remoting.RequestSendMessageV2), Language: remoting.LanguageGo, Version: 479,
		Opaque: 7, Fields: h.AppendFieldsV2(make(remoting.Fields, 0, 16)), Body: bytes.Repeat([]byte("x"), size)}
}

// pullResponse returns a pull answer carrying n messages of size bytes.
func pullResponse(b testing.TB, n, size int) []byte {
	var body []byte
	for i := 0; i < n; i++ {
		m := remoting.Message{MagicCode: remoting.MagicV1, QueueID: 1, QueueOffset: int64(i), CommitLogOffset: int64(i * 1000),
			BornTimestamp: 1700000000000, BornHost: netip.MustParseAddrPort("10.0.0.5:50000"), StoreTimestamp: 1700000000001,
			StoreHost: netip.MustParseAddrPort("192.168.0.10:10911"), Body: bytes.Repeat([]byte("x"), size), Topic: "TopicTest",
			Properties: remoting.Properties{{"UNIQ_KEY", "AC110001000118B4AAC2000000000000"}, {"TAGS", "TagA"}, {"CLUSTER", "DefaultCluster"}}}
		var err error
		if body, err = remoting.AppendMessage(body, &m); err != nil {
			b.Fatal(err)
		}
	}
	h := remoting.PullMessageResponseHeader{NextBeginOffset: int64(n), MaxOffset: int64(n)}
	frame, err := remoting.AppendCommand(nil, &remoting.Command{Code: 0, Flag: remoting.FlagResponse, Opaque: 9,
		Fields: remoting.EncodeHeader(&h), Body: body})
	if err != nil {
		b.Fatal(err)
	}
	return frame
}

func BenchmarkEncodeSend(b *testing.B) {
	for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
		b.Run(st.String(), func(b *testing.B) {
			cmd, buf := sendRequest(4<<10), []byte(nil)
			cmd.Serialize = st
			b.ReportAllocs()
			b.SetBytes(4 << 10)
			for b.Loop() {
				buf, _ = remoting.AppendCommand(buf[:0], cmd)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkBuildAndEncodeSend includes building the header fields from the
// typed header, as a producer path does per message.
func BenchmarkBuildAndEncodeSend(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 4<<10)
	buf := []byte(nil)
	b.ReportAllocs()
	b.SetBytes(4 << 10)
	for b.Loop() {
		h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: "broker-a"}, ProducerGroup: "PG", Topic: "TopicTest",
			DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: 1, BornTimestamp: 1700000000000,
			Properties: "UNIQ_KEY\x01AC110001000118B4AAC2000000000000\x02TAGS\x01TagA\x02WAIT\x01true\x02"}
		cmd := remoting.Command{Code: int32(remoting.RequestSendMessageV2), Opaque: 7, Fields: h.AppendFieldsV2(make(remoting.Fields, 0, 16)), Body: body}
		buf, _ = remoting.AppendCommand(buf[:0], &cmd)
	}
}

func BenchmarkDecodeSend(b *testing.B) {
	for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
		b.Run(st.String(), func(b *testing.B) {
			cmd := sendRequest(4 << 10)
			cmd.Serialize = st
			frame, _ := remoting.AppendCommand(nil, cmd)
			b.ReportAllocs()
			b.SetBytes(4 << 10)
			for b.Loop() {
				c, _, err := remoting.Decode(frame, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := remoting.DecodeSendMessageRequestHeader(c.Code, c.Fields); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkDecodePull decodes a pull answer of 32 messages of 1 KiB: frame,
// response header and every message with its properties.
func BenchmarkDecodePull(b *testing.B) {
	frame := pullResponse(b, 32, 1<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		c, _, err := remoting.Decode(frame, 0)
		if err != nil {
			b.Fatal(err)
		}
		var h remoting.PullMessageResponseHeader
		if err := h.DecodeFields(c.Fields); err != nil {
			b.Fatal(err)
		}
		msgs, err := remoting.DecodeMessages(c.Body)
		if err != nil || len(msgs) != 32 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*32)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkEncodePull(b *testing.B) {
	frame := pullResponse(b, 32, 1<<10)
	c, _, _ := remoting.Decode(frame, 0)
	msgs, _ := remoting.DecodeMessages(c.Body)
	var body, buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		body = body[:0]
		for i := range msgs {
			body, _ = remoting.AppendMessage(body, &msgs[i])
		}
		c.Body = body
		buf, _ = remoting.AppendCommand(buf[:0], c)
	}
}

// TestDecodeMessagesSharesTheTopic: the messages of one answer that are of
// one topic share its string (one copy per answer, not per message).
func TestDecodeMessagesSharesTheTopic(t *testing.T) {
	c, _, err := remoting.Decode(pullResponse(t, 3, 16), 0)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := remoting.DecodeMessages(c.Body)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("DecodeMessages: %d messages, %v", len(msgs), err)
	}
	for i := range msgs {
		if msgs[i].Topic != "TopicTest" || unsafe.StringData(msgs[i].Topic) != unsafe.StringData(msgs[0].Topic) {
			t.Errorf("message %d: topic %q is a copy of its own", i, msgs[i].Topic)
		}
	}
}
