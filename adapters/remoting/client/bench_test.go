package client_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
)

// sendAnswerer answers every request with a send response shaped like a
// 5.5.0 broker's, allocating nothing per request itself, so that the
// benchmark's allocations are the client's. It reads what the peer has
// sent before it flushes, as a broker's event loop does.
func sendAnswerer(p *peer) {
	bw := bufio.NewWriterSize(p.nc, 64<<10)
	resp := &remoting.Command{Flag: remoting.FlagResponse, Version: 513, Fields: (&remoting.SendMessageResponseHeader{
		MsgID: "7F00000100002A9F0000000000A1B2C3", QueueID: 3, QueueOffset: 123456, TransactionID: "7F000001000063B4D1C2A3F40B0E0001",
		MsgRegion: "DefaultRegion", TraceOn: "true"}).AppendFields(nil)}
	var prefix [4]byte
	var frame, out []byte
	key := []byte(`"opaque":`)
	for {
		if _, err := io.ReadFull(p.br, prefix[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(prefix[:]))
		if cap(frame) < n {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if _, err := io.ReadFull(p.br, frame); err != nil {
			return
		}
		i := bytes.Index(frame, key)
		if i < 0 {
			return
		}
		j := i + len(key)
		k := j
		if k < len(frame) && frame[k] == '-' {
			k++
		}
		for k < len(frame) && frame[k] >= '0' && frame[k] <= '9' {
			k++
		}
		opaque, err := strconv.ParseInt(string(frame[j:k]), 10, 32) // no allocation: the compiler elides it
		if err != nil {
			return
		}
		resp.Opaque = int32(opaque)
		if out, err = remoting.AppendCommand(out[:0], resp); err != nil {
			return
		}
		if _, err := bw.Write(out); err != nil {
			return
		}
		if p.br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// BenchmarkInvokeSend: 16 goroutines each sending a 1 KiB SEND_MESSAGE_V2
// (the cluster adapter's header) over one client and decoding the answer's
// header, against a peer that answers at once.
func BenchmarkInvokeSend(b *testing.B) {
	fb := newFakeBroker(b, sendAnswerer)
	addr := fb.addr()
	c := client.New(client.Config{})
	defer c.Close()
	body := bytes.Repeat([]byte("x"), 1024)
	h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: "broker-a"}, ProducerGroup: "bench", Topic: "bench",
		DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: 3, BornTimestamp: time.Now().UnixMilli(),
		Properties: "UNIQ_KEY\x017F0000010001B4D1C2A3F40B0E0001\x02TAGS\x01tag-a\x02PGROUP\x01bench\x02"}
	// One deadline for all calls, like the gRPC call's a proxy passes on:
	// the allocations counted are the client's and the codec's.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.SetBytes(int64(len(body)))
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ReportAllocs()
	w0 := syscalls(b, "syscw")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Invoke(ctx, addr, remoting.NewRequest(remoting.RequestSendMessageV2, h.AppendFieldsV2(nil), body))
			if err != nil {
				b.Error(err)
				return
			}
			var sr remoting.SendMessageResponseHeader
			if err := sr.DecodeFields(resp.Fields); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	// Both ends' writes: the client's writer and the answering peer.
	b.ReportMetric(float64(syscalls(b, "syscw")-w0)/float64(b.N), "writes/op")
}

// syscalls reads a counter of /proc/self/io (syscr, syscw).
func syscalls(b *testing.B, name string) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io:", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
