package cluster

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

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
// until the test ends, and returns the address.
func startFakeSocket(t *testing.T, answer func(*remoting.Command) *remoting.Command) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	serve := func(nc net.Conn) {
		defer wg.Done()
		defer nc.Close()
		br := bufio.NewReader(nc)
		for {
			req, err := remoting.ReadCommand(br, 0)
			if err != nil {
				return
			}
			b, _ := remoting.AppendCommand(nil, answer(req))
			if _, err := nc.Write(b); err != nil {
				return
			}
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
			t.Cleanup(func() { nc.Close() })
		}
	}()
	return ln.Addr().String()
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
	b, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// TestDescriptionsInKVConfig: a description goes to every NameServer under
// the cluster's namespace, is read back from the first that answers, and
// an empty one deletes the entry. A NameServer that cannot be reached
// makes the write fail with its address, after the others took it.
func TestDescriptionsInKVConfig(t *testing.T) {
	ns1, ns2, dead := startFakeKV(t), startFakeKV(t), deadAddr(t)
	ctx := t.Context()

	b := newKVBroker(t, ns1.addr, ns2.addr)
	if got, err := b.descriptions(ctx, groupDescriptions); err != nil || len(got) != 0 {
		t.Fatalf("a namespace no NameServer has: %v %v", got, err)
	}
	if err := b.storeDescription(ctx, topicDescriptions, "orders", "EU orders, \"priority\"\nline 2"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*fakeKV{ns1, ns2} {
		if v, _ := f.get("rmqproxy.topic.description.C1", "orders"); v != "EU orders, \"priority\"\nline 2" {
			t.Fatalf("NameServer %s holds %q", f.addr, v)
		}
	}
	got, err := b.descriptions(ctx, topicDescriptions)
	if err != nil || got["orders"] != "EU orders, \"priority\"\nline 2" || len(got) != 1 {
		t.Fatalf("read back: %q %v", got, err)
	}
	if err := b.storeDescription(ctx, topicDescriptions, "orders", ""); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*fakeKV{ns1, ns2} {
		if v, ok := f.get("rmqproxy.topic.description.C1", "orders"); ok {
			t.Fatalf("NameServer %s still holds %q after the delete", f.addr, v)
		}
	}
	if got, err := b.descriptions(ctx, topicDescriptions); err != nil || len(got) != 0 {
		t.Fatalf("after the delete: %q %v", got, err)
	}

	// One NameServer of two cannot be reached: the other takes it, and
	// the error names the one that did not.
	b = newKVBroker(t, ns1.addr, dead)
	err = b.storeDescription(ctx, groupDescriptions, "g1", "made by a test")
	var se *storeError
	if !errors.As(err, &se) || len(se.failed) != 1 || !strings.Contains(err.Error(), "1 of 2 NameServers failed") || !strings.Contains(err.Error(), dead) {
		t.Fatalf("write with a NameServer down: %v", err)
	}
	if v, _ := ns1.get("rmqproxy.group.description.C1", "g1"); v != "made by a test" {
		t.Fatalf("the NameServer that answers holds %q", v)
	}
	de := descriptionFailed(`consumer group "g1" was created`, err, "run it again")
	if domain.ReasonOf(de) != domain.ReasonUnavailable || !strings.Contains(domain.MessageOf(de), `consumer group "g1" was created, but its description was not stored on every NameServer`) ||
		!strings.Contains(domain.MessageOf(de), dead) {
		t.Fatalf("reported as %v: %s", domain.ReasonOf(de), domain.MessageOf(de))
	}

	// No NameServer answers: reading descriptions fails precisely.
	b = newKVBroker(t, dead)
	if _, err := b.descriptions(ctx, topicDescriptions); domain.ReasonOf(err) != domain.ReasonUnavailable ||
		!strings.Contains(domain.MessageOf(err), "rmqproxy.topic.description.C1") {
		t.Fatalf("read with no NameServer: %v", err)
	}
}
