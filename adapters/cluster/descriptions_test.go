package cluster

import (
	"bufio"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// fakeKV is a NameServer's KV config behind a socket, answering as
// upstream's DefaultRequestProcessor does (QUERY_NOT_FOUND for a namespace
// it never had).
type fakeKV struct {
	addr string
	mu   sync.Mutex
	kv   map[string]map[string]string
}

func startFakeKV(t *testing.T) *fakeKV {
	t.Helper()
	f := &fakeKV{kv: map[string]map[string]string{}}
	f.addr = startFakeSocket(t, f.answer)
	return f
}

// startFakeSocket serves Remoting requests on a loopback port with answer
// until the test ends, and returns the address. An answer of nil closes
// the request's connection without answering (a broker restarting); one
// of noAnswer leaves the request unanswered and reads on (a hung peer).
func startFakeSocket(t testing.TB, answer func(*remoting.Command) *remoting.Command) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFakeSocket(t, ln, answer)
}

// noAnswer is the answer of a fake socket (see startFakeSocket) that
// leaves a request unanswered.
var noAnswer = new(remoting.Command)

// serveFakeSocket answers the Remoting requests of every connection ln
// accepts (a TLS listener: after its handshake) with answer, until the
// test ends; it returns ln's address.
func serveFakeSocket(t testing.TB, ln net.Listener, answer func(*remoting.Command) *remoting.Command) string {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	acceptEach(t, &wg, ln, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		for {
			req, err := remoting.ReadCommand(br, 0)
			if err != nil {
				return
			}
			resp := answer(req)
			if resp == nil {
				return
			}
			if resp == noAnswer {
				continue
			}
			b, _ := remoting.AppendCommand(nil, resp)
			if _, err := nc.Write(b); err != nil {
				return
			}
		}
	})
	return ln.Addr().String()
}

// acceptEach serves every connection ln accepts, until ln is closed, on a
// goroutine of its own; the connection is closed when serve returns or the
// test ends, whichever comes first. wg counts the accept loop and those
// goroutines.
// startSilentPeer listens on loopback for a peer that takes connections
// and reads what is sent but never answers (a frozen process, a host cut
// off behind a live socket), and returns its address.
func startSilentPeer(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	acceptEach(t, &wg, ln, func(nc net.Conn) { _, _ = io.Copy(io.Discard, nc) })
	return ln.Addr().String()
}

func acceptEach(t testing.TB, wg *sync.WaitGroup, ln net.Listener, serve func(nc net.Conn)) {
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			wg.Go(func() {
				defer nc.Close()
				serve(nc)
			})
		}
	})
}

func (f *fakeKV) answer(req *remoting.Command) *remoting.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
	switch remoting.RequestCode(req.Code) {
	case remoting.RequestPutKvConfig, remoting.RequestDeleteKvConfig:
		var h remoting.KVConfigRequestHeader
		if err := h.DecodeFields(req.Fields); err != nil {
			return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
		}
		if f.kv[h.Namespace] == nil {
			f.kv[h.Namespace] = map[string]string{}
		}
		if remoting.RequestCode(req.Code) == remoting.RequestDeleteKvConfig {
			delete(f.kv[h.Namespace], h.Key)
		} else {
			f.kv[h.Namespace][h.Key] = h.Value
		}
	case remoting.RequestGetKvlistByNamespace:
		var h remoting.KVNamespaceRequestHeader
		if err := h.DecodeFields(req.Fields); err != nil {
			return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
		}
		table, ok := f.kv[h.Namespace]
		if !ok {
			return remoting.NewResponse(req, remoting.ResponseQueryNotFound, "No config item, Namespace: "+h.Namespace)
		}
		resp.Body, _ = remoting.EncodeJSONBody(remoting.KVTable{Table: table})
	default:
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
	}
	return resp
}

func (f *fakeKV) get(ns, key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.kv[ns][key]
	return v, ok
}

// startFakeBroker is startFakeSocket for a fake broker that is also its
// NameServer: it answers GET_BROKER_CLUSTER_INFO with a cluster of one
// broker at its own address, and every other request with answer, given
// that address and a SUCCESS response to fill or replace.
func startFakeBroker(t *testing.T, answer func(addr string, req, resp *remoting.Command) *remoting.Command) string {
	t.Helper()
	var addr string
	addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		if remoting.RequestCode(req.Code) == remoting.RequestGetBrokerClusterInfo {
			resp.Body = oneBrokerCluster(addr)
			return resp
		}
		return answer(addr, req, resp)
	})
	return addr
}

// answerSuccess is a startFakeBroker answer: SUCCESS, with nothing in it,
// to every request.
func answerSuccess(_ string, _, resp *remoting.Command) *remoting.Command { return resp }

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newKVBroker(t *testing.T, nameServers ...string) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NameServers = nameServers
	cfg.ClusterName = "C1"
	return newBroker(t, cfg, nil)
}

// TestDescriptionsInKVConfig: a description and its times go to every
// NameServer under the cluster's namespaces and are read back; the zero
// entry deletes both. A NameServer that cannot be reached makes the write
// fail with its address, after the others took it.
func TestDescriptionsInKVConfig(t *testing.T) {
	ns1, ns2, dead := startFakeKV(t), startFakeKV(t), deadAddr(t)
	ctx := t.Context()
	all := func(string) bool { return true }

	b := newKVBroker(t, ns1.addr, ns2.addr)
	if got, err := b.entries(ctx, groupKV, all); err != nil || len(got) != 0 {
		t.Fatalf("a namespace no NameServer has: %v %v", got, err)
	}
	orders := kvEntry{Description: "EU orders, \"priority\"\nline 2", Created: 1_700_000_000_000, Updated: 1_700_000_000_500}
	if err := b.storeEntry(ctx, topicKV, "orders", orders); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*fakeKV{ns1, ns2} {
		if v, _ := f.get("rmqproxy.topic.description.C1", "orders"); v != orders.Description {
			t.Fatalf("NameServer %s holds %q", f.addr, v)
		}
		if v, _ := f.get("rmqproxy.topic.times.C1", "orders"); v != "1700000000000 1700000000500" {
			t.Fatalf("NameServer %s holds the times %q", f.addr, v)
		}
	}
	got, err := b.entries(ctx, topicKV, all)
	if err != nil || got["orders"] != orders || len(got) != 1 {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if c, u := got["orders"].times(); !c.Equal(time.UnixMilli(1_700_000_000_000)) || !u.Equal(time.UnixMilli(1_700_000_000_500)) {
		t.Fatalf("times %v %v", c, u)
	}
	if err := b.storeEntry(ctx, topicKV, "orders", kvEntry{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*fakeKV{ns1, ns2} {
		for _, ns := range []string{"rmqproxy.topic.description.C1", "rmqproxy.topic.times.C1"} {
			if v, ok := f.get(ns, "orders"); ok {
				t.Fatalf("NameServer %s still holds %q in %s after the delete", f.addr, v, ns)
			}
		}
	}
	if got, err := b.entries(ctx, topicKV, all); err != nil || len(got) != 0 {
		t.Fatalf("after the delete: %+v %v", got, err)
	}

	// One NameServer of two cannot be reached: the other takes it, and
	// the error names the one that did not.
	b = newKVBroker(t, ns1.addr, dead)
	err = b.storeEntry(ctx, groupKV, "g1", kvEntry{Description: "made by a test", Created: 1, Updated: 1})
	var se *storeError
	if !errors.As(err, &se) || len(se.failed) != 1 || !strings.Contains(err.Error(), "1 of 2 NameServers failed") || !strings.Contains(err.Error(), dead) {
		t.Fatalf("write with a NameServer down: %v", err)
	}
	if v, _ := ns1.get("rmqproxy.group.description.C1", "g1"); v != "made by a test" {
		t.Fatalf("the NameServer that answers holds %q", v)
	}
	if got, err := b.entries(ctx, groupKV, all); err != nil || got["g1"].Description != "made by a test" {
		t.Fatalf("read with a NameServer down: %+v %v", got, err)
	}
	de := descriptionFailed(`consumer group "g1" was created`, err, "run it again")
	if domain.ReasonOf(de) != domain.ReasonUnavailable || !strings.Contains(domain.MessageOf(de), `consumer group "g1" was created, but its description was not stored on every NameServer`) ||
		!strings.Contains(domain.MessageOf(de), dead) {
		t.Fatalf("reported as %v: %s", domain.ReasonOf(de), domain.MessageOf(de))
	}

	// No NameServer answers: reading descriptions fails precisely.
	b = newKVBroker(t, dead)
	if _, err := b.entries(ctx, topicKV, all); domain.ReasonOf(err) != domain.ReasonUnavailable ||
		!strings.Contains(domain.MessageOf(err), "rmqproxy.topic.description.C1") {
		t.Fatalf("read with no NameServer: %v", err)
	}
}

// TestDescriptionsLatestWins: NameServers that missed changes hold older
// copies. A read takes each entry's latest copy wherever it is (also when
// the first NameServer is the stale one), gives it to the NameServers
// that hold another copy, and leaves alone entries of topics that do not
// exist and entries without times (nothing tells which copy is right).
func TestDescriptionsLatestWins(t *testing.T) {
	ns1, ns2 := startFakeKV(t), startFakeKV(t)
	ctx := t.Context()
	put := func(f *fakeKV, ns, key, value string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.kv[ns] == nil {
			f.kv[ns] = map[string]string{}
		}
		f.kv[ns][key] = value
	}
	const descs, times = "rmqproxy.topic.description.C1", "rmqproxy.topic.times.C1"
	// "a": ns1 missed the last update. "b": ns2 missed the creation.
	// "gone": ns1 missed an update of a topic deleted since. "legacy":
	// descriptions without times that differ.
	put(ns1, descs, "a", "old")
	put(ns1, times, "a", "100 100")
	put(ns2, descs, "a", "new")
	put(ns2, times, "a", "100 200")
	put(ns1, descs, "b", "only here")
	put(ns1, times, "b", "300 300")
	put(ns2, descs, "gone", "stale")
	put(ns2, times, "gone", "50 60")
	put(ns1, descs, "legacy", "one")
	put(ns2, descs, "legacy", "two")

	b := newKVBroker(t, ns1.addr, ns2.addr)
	live := func(n string) bool { return n != "gone" }
	got, err := b.entries(ctx, topicKV, live)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]kvEntry{"a": {"new", 100, 200}, "b": {"only here", 300, 300}, "gone": {"stale", 50, 60}, "legacy": {Description: "one"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		f         *fakeKV
		ns, key   string
		want      string
		wantFound bool
	}{
		{ns1, descs, "a", "new", true}, {ns1, times, "a", "100 200", true},
		{ns2, descs, "b", "only here", true}, {ns2, times, "b", "300 300", true},
		{ns1, descs, "gone", "", false},
		{ns1, descs, "legacy", "one", true}, {ns2, descs, "legacy", "two", true},
	} {
		if v, ok := c.f.get(c.ns, c.key); v != c.want || ok != c.wantFound {
			t.Fatalf("NameServer %s holds %q (%v) at %s/%s, want %q (%v)", c.f.addr, v, ok, c.ns, c.key, c.want, c.wantFound)
		}
	}
}

// TestCreateWithoutDescriptionSaysHowToStoreIt: a group created without a
// description while a NameServer is down was answered "run `rmqproxy group
// update g --description` with the text again", a text the operator never
// gave; it says to store an empty one. With a description the advice stays.
func TestCreateWithoutDescriptionSaysHowToStoreIt(t *testing.T) {
	dead := deadAddr(t)
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: map[string]remoting.SubscriptionGroupConfig{}})
		}
		return resp
	})
	b := newKVBroker(t, addr, dead)
	b.cfg.ClusterName = "DefaultCluster"
	g := domain.NewConsumerGroup("g1")
	_, err := b.CreateGroup(t.Context(), g)
	if msg := domain.MessageOf(err); !strings.Contains(msg, "run `rmqproxy group update g1 --description \"\"`") || strings.Contains(msg, "text again") {
		t.Errorf("created without a description: %v", err)
	}
	g.Name, g.Description = "g2", "billing"
	_, err = b.CreateGroup(t.Context(), g)
	if msg := domain.MessageOf(err); !strings.Contains(msg, "run `rmqproxy group update g2 --description` with the text again") {
		t.Errorf("created with a description: %v", err)
	}
}
