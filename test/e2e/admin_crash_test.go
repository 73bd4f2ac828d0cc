package e2e_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// snapshotCovers waits until rmqproxy wrote a snapshot covering the whole
// commit log as it is now (the proxy runs with a short snapshot interval).
func snapshotCovers(t *testing.T, dir string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "commitlog", "0*"))
	slices.Sort(segs)
	b, err := os.ReadFile(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	base, _ := strconv.ParseInt(filepath.Base(segs[len(segs)-1]), 10, 64)
	end := base + recordsEnd(b)
	testenv.WaitFor(t, 30*time.Second, func() error {
		snaps, _ := filepath.Glob(filepath.Join(dir, "snapshot", "*.snap"))
		for _, s := range snaps {
			if off, _ := strconv.ParseInt(strings.TrimSuffix(filepath.Base(s), ".snap"), 10, 64); off >= end {
				return nil
			}
		}
		return fmt.Errorf("no snapshot covers offset %d yet: %v", end, snaps)
	})
}

// recordsEnd returns where the records of a commit-log segment end: the
// last segment holds zeros after them (local.preallocate). It walks the
// frames (docs/storage.md: a 4-byte big-endian length L, a 4-byte
// checksum, then L bytes) up to the first zero length or the file's end.
func recordsEnd(segment []byte) int64 {
	pos := 0
	for pos+8 <= len(segment) {
		l := int(binary.BigEndian.Uint32(segment[pos:]))
		if l == 0 || pos+8+l > len(segment) {
			break
		}
		pos += 8 + l
	}
	return int64(pos)
}

// startServing starts rmqproxy on dir and fails with its logs when it does
// not serve.
func startServing(t *testing.T, dir string, flags ...string) *testenv.Child {
	t.Helper()
	c := testenv.StartChild(t, dir, flags...)
	if c.AdminAddr == "" || c.GRPCAddr == "" {
		t.Fatalf("rmqproxy does not serve; logs:\n%s", c.Output())
	}
	return c
}

// TestKill9RightAfterTopicAndGroupDelete kills rmqproxy right after a topic
// deletion (whose consume queues the last snapshot lists) and right after a
// group deletion (whose state it holds): the data directory must start, and
// serve, each time.
func TestKill9RightAfterTopicAndGroupDelete(t *testing.T) {
	testenv.LocalOnly(t, "it reads the embedded broker's snapshot files")
	waitsInParallel(t)
	dir := t.TempDir()
	flags := append([]string{"--local.snapshotInterval=200ms"}, fastConsumer...)
	c := testenv.StartChild(t, dir, flags...)
	ac := adminClient(t, c)
	ctx := t.Context()
	for _, name := range []string{"doomed", "kept"} {
		if _, err := ac.CreateTopic(ctx, application.TopicSpec{Name: name, Type: domain.MessageTypeNormal, QueueCount: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ac.CreateGroup(ctx, application.GroupSpec{Name: "g-doomed"}); err != nil {
		t.Fatal(err)
	}
	pr := testenv.NewProducer(t, c.Proxy(t), "doomed", "kept")
	for i := range 10 {
		for _, topic := range []string{"doomed", "kept"} {
			if _, err := pr.Send(ctx, &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint(topic, i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = pr.GracefulStop()
	raw := testenv.NewRawClient(t, c.Proxy(t))
	raw.Subscribe(t, "g-doomed", "kept")
	if st, msgs := raw.Receive(t, testenv.ReceiveRequest("g-doomed", "kept", 4, time.Minute)); st.GetCode() != v2.Code_OK || len(msgs) == 0 {
		t.Fatalf("receive: %v, %d messages", st, len(msgs))
	}
	snapshotCovers(t, dir)

	// Crash right after the topic deletion.
	if err := ac.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	c.Kill(t)
	c = startServing(t, dir, flags...)
	ac = adminClient(t, c)
	if _, err := ac.Topic(ctx, "doomed"); err == nil {
		t.Fatal("the deleted topic is back after the crash")
	}
	if _, err := ac.CreateTopic(ctx, application.TopicSpec{Name: "doomed", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	snapshotCovers(t, dir)

	// Crash right after the group deletion.
	if err := ac.DeleteGroup(ctx, "g-doomed"); err != nil {
		t.Fatal(err)
	}
	c.Kill(t)
	c = startServing(t, dir, flags...)
	ac = adminClient(t, c)
	if _, err := ac.Group(ctx, "g-doomed"); err == nil {
		t.Fatal("the deleted group is back after the crash")
	}
	// It serves: the kept topic still holds its ten messages for a new
	// group, and the recreated topic takes and delivers a message.
	p := c.Proxy(t)
	pr = testenv.NewProducer(t, p, "doomed")
	if _, err := pr.Send(ctx, &rmq.Message{Topic: "doomed", Body: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	_ = pr.GracefulStop()
	sc := testenv.NewSimpleConsumer(t, p, "g-after", time.Second, map[string]*rmq.FilterExpression{"kept": rmq.SUB_ALL, "doomed": rmq.SUB_ALL})
	got := receiveAll(t, sc, 11, 60*time.Second)
	if len(got) != 11 {
		t.Fatalf("received %d messages after the crashes, want 11", len(got))
	}
}

// TestUnusableDataDirNamesTheSetting: a file where the data directory
// should be stops rmqproxy with one line that names local.dataDir and the
// cause, without the dependency-injection chain and before anything else
// (the self-signed certificate lives under the data directory too).
func TestUnusableDataDirNamesTheSetting(t *testing.T) {
	testenv.LocalOnly(t, "cluster mode keeps no data in local.dataDir (only the self-signed certificate, whose error names grpc.tls)")
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := testenv.StartChild(t, file)
	code, logs := c.ExitedWith(t)
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	last := lines[len(lines)-1]
	if code == 0 || !strings.HasPrefix(last, "rmqproxy: local.dataDir") || !strings.Contains(last, "not a directory") {
		t.Fatalf("exit %d, last line %q; logs:\n%s", code, last, logs)
	}
	for _, noise := range []string{"could not build", "reflect", "tls", "fx"} {
		if strings.Contains(logs, noise) {
			t.Errorf("the output mentions %q:\n%s", noise, logs)
		}
	}
}
