package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
	"github.com/rmqproxy/rmqproxy/test/testenv/tmpfs"
)

// TestDiskFullThroughTheGoClient runs the binary on a small tmpfs and fills
// it through the official Go client: sends then fail with
// TOO_MANY_REQUESTS saying the disk is full (a code the clients retry with
// back-off), /readyz says why, receives and acks go on, the full disk is
// logged a bounded number of times however many sends are refused, and
// once the file system grows, sends resume by themselves and every
// acknowledged send is consumed, also after a kill -9.
func TestDiskFullThroughTheGoClient(t *testing.T) {
	testenv.LocalOnly(t, "fills the embedded engine's file system")
	mnt := tmpfs.Mount(t, "6m")
	data := filepath.Join(mnt, "data")
	small := []string{"--local.segmentSize=1048576", "--local.maxRecordSize=65536",
		"--local.maxPendingBytes=1048576", "--local.diskReserve=262144"}
	c := testenv.StartChild(t, data, append(small, "--grpc.address="+freeport.Addr(t))...)
	createTopicCLI(t, c, "full-t")
	testenv.Claim(t, "consumer group", "full-g")
	if code, out := testenv.CLI(t, "group", "create", "full-g", "--admin.address="+c.AdminAddr); code != 0 {
		t.Fatalf("group create: exit %d:\n%s", code, out)
	}
	p := c.Proxy(t)
	producer := testenv.NewProducer(t, p, "full-t")
	consumer := testenv.NewSimpleConsumer(t, p, "full-g", 5*time.Second, map[string]*rmq.FilterExpression{"full-t": rmq.SUB_ALL})
	body := bytes.Repeat([]byte{'x'}, 4<<10)
	send := func(i int) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		r, err := producer.Send(ctx, &rmq.Message{Topic: "full-t", Body: append(fmt.Appendf(nil, "%06d", i), body...)})
		if err != nil {
			return "", err
		}
		return r[0].MessageID, nil
	}

	acked := map[string]bool{}
	var fullErr error
	for i := 0; fullErr == nil; i++ {
		if i > 3000 {
			t.Fatal("a 6 MiB file system never filled")
		}
		id, err := send(i)
		switch {
		case err == nil:
			acked[id] = true
		case rpcCode(err) == v2.Code_TOO_MANY_REQUESTS:
			fullErr = err
		default:
			t.Fatalf("send %d on a filling disk: %v (want TOO_MANY_REQUESTS)", i, err)
		}
	}
	if !strings.Contains(fullErr.Error(), "disk holding local.dataDir is full") {
		t.Fatalf("the disk-full error does not say so: %v", fullErr)
	}
	// More refused sends: each is a retryable answer, and the log does not
	// grow with them.
	const refused = 30
	for i := range refused {
		if _, err := send(100000 + i); rpcCode(err) != v2.Code_TOO_MANY_REQUESTS {
			t.Fatalf("send on a full disk: %v (want TOO_MANY_REQUESTS)", err)
		}
	}
	n := strings.Count(c.Output(), "is full")
	t.Logf("the full disk was logged %d times", n)
	if n > 5 {
		t.Errorf("the full disk was logged %d times for %d refused sends (and the Go client's retries); want it rate-limited", n, refused+1)
	}
	resp, err := http.Get("http://" + c.HealthAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(ready), "full") {
		t.Fatalf("/readyz on a full disk: %d %s", resp.StatusCode, ready)
	}

	// Receives and acks go on while the disk is full.
	consumed := map[string]bool{}
	receive := func(want int) error {
		ms, err := consumer.Receive(t.Context(), 32, time.Minute)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		for _, m := range ms {
			if err := consumer.Ack(t.Context(), m); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			consumed[m.GetMessageId()] = true
		}
		if len(consumed) < want {
			return fmt.Errorf("%d of %d consumed", len(consumed), want)
		}
		return nil
	}
	testenv.WaitFor(t, time.Minute, func() error { return receive(32) })
	t.Logf("%d sends acknowledged before the disk was full; %d consumed while it was full", len(acked), len(consumed))

	// Space comes back: sends resume by themselves.
	tmpfs.Resize(t, mnt, "64m")
	testenv.WaitFor(t, time.Minute, func() error {
		id, err := send(200000)
		if err == nil {
			acked[id] = true
		}
		return err
	})
	testenv.WaitFor(t, time.Minute, func() error {
		resp, err := http.Get("http://" + c.HealthAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})

	// kill -9, restart, consume the rest: nothing acknowledged is lost.
	c.Kill(t)
	// The same address: the consumer above reconnects by itself.
	testenv.StartChild(t, data, append(small, "--grpc.address="+c.GRPCAddr)...)
	testenv.WaitFor(t, 2*time.Minute, func() error {
		if err := receive(0); err != nil {
			return err
		}
		missing := 0
		for id := range acked {
			if !consumed[id] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged sends not consumed yet", missing, len(acked))
		}
		return nil
	})
}
