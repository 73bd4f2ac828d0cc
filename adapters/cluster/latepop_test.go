package cluster

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestLatePopAnswerReleasesItsMessages: a broker (a fake socket: a real
// broker drops a pop that waited too long before it read it, so it cannot
// be made to answer late on demand) answers a POP_MESSAGE after the
// receive gave up. The message it popped is made visible again at once
// (CHANGE_MESSAGE_INVISIBLETIME to 1 s) instead of staying hidden for the
// receive's invisible time.
func TestLatePopAnswerReleasesItsMessages(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	release := make(chan struct{})
	changed := make(chan *remoting.ChangeInvisibleTimeRequestHeader, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	serve := func(nc net.Conn) {
		defer wg.Done()
		defer nc.Close()
		br := bufio.NewReader(nc)
		var mu sync.Mutex
		write := func(cmd *remoting.Command) {
			b, err := remoting.AppendCommand(nil, cmd)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			_, _ = nc.Write(b)
		}
		for {
			req, err := remoting.ReadCommand(br, 0)
			if err != nil {
				return
			}
			resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
			switch remoting.RequestCode(req.Code) {
			case remoting.RequestGetRouteinfoByTopic:
				resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicRouteData{
					QueueDatas:  []remoting.QueueData{{BrokerName: "b", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite}},
					BrokerDatas: []remoting.BrokerData{{Cluster: "c", BrokerName: "b", BrokerAddrs: map[int64]string{0: addr}}},
				})
			case remoting.RequestGetTopicConfig:
				resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "T", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite})
			case remoting.RequestPopMessage:
				wg.Add(1)
				go func() { // answered late, while the connection serves on
					defer wg.Done()
					<-release
					now := time.Now().UnixMilli()
					resp.Fields = remoting.EncodeHeader(&remoting.PopMessageResponseHeader{PopTime: now, InvisibleTime: 60000,
						StartOffsetInfo: "0 0 5", MsgOffsetInfo: "0 0 5"})
					m := remoting.Message{MagicCode: remoting.MagicV1, QueueID: 0, QueueOffset: 5, CommitLogOffset: 4096,
						BornTimestamp: now, BornHost: netip.MustParseAddrPort("127.0.0.1:1"), StoreTimestamp: now,
						StoreHost: netip.MustParseAddrPort("127.0.0.1:2"), Body: []byte("late"), Topic: "T"}
					m.BodyCRC = remoting.BodyCRC(m.Body)
					m.Properties.Set(remoting.PropertyUniqKey, "01AB")
					if resp.Body, err = remoting.AppendMessage(nil, &m); err != nil {
						t.Error(err)
					}
					write(resp)
				}()
				continue
			case remoting.RequestChangeMessageInvisibletime:
				var h remoting.ChangeInvisibleTimeRequestHeader
				if err := h.DecodeFields(req.Fields); err != nil {
					t.Error(err)
				}
				changed <- &h
				resp.Fields = remoting.EncodeHeader(&remoting.ChangeInvisibleTimeResponseHeader{PopTime: time.Now().UnixMilli(), InvisibleTime: h.InvisibleTime})
			}
			write(resp)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go serve(nc)
		}
	}()

	cfg := DefaultConfig()
	cfg.NameServers = []string{addr}
	b, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	msgs, err := b.Pop(ctx, ports.PopRequest{Group: "g", Topic: "T", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute,
		PollTimeout: 100 * time.Millisecond, Filter: filter.All})
	if err == nil {
		t.Fatalf("the pop returned %d messages before its answer came", len(msgs))
	}
	close(release)
	select {
	case h := <-changed:
		if h.InvisibleTime != lateReleaseInvisibleTime.Milliseconds() || h.ConsumerGroup != "g" || h.Topic != "T" || h.Offset != 5 {
			t.Fatalf("released with %+v", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer's message was not released")
	}
}
