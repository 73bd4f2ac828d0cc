package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Topic and consumer group descriptions and their created and updated
// times have no place in a broker's topic or group configuration, so
// cluster mode keeps them in the NameServers' KV config, two namespaces
// per kind and cluster (each prefix below followed by
// cluster.clusterName), the topic or group name as the key:
//
//   - the description namespace holds the description as it was given
//     (what `mqadmin getKVConfig` shows);
//   - the times namespace holds "CREATED UPDATED", two Unix times in ms.
//
// Every instance of rmqproxy in front of the cluster reads the same
// entries, so they stay cluster-wide and rmqproxy stateless. A NameServer
// does not share its KV config with the others, so writes go to every
// configured NameServer (as upstream's admin tools do), and a NameServer
// that missed one (it was down) holds an older copy: reads ask every
// NameServer, take each entry's copy with the latest updated time, and
// write it back to the NameServers whose copy differs (read repair).
const (
	topicDescriptions = "rmqproxy.topic.description."
	groupDescriptions = "rmqproxy.group.description."
	topicTimes        = "rmqproxy.topic.times."
	groupTimes        = "rmqproxy.group.times."
)

// kvKind names the two namespaces (without the cluster name) of one kind
// of resource.
type kvKind struct {
	what         string // "topic" or "consumer group", for messages
	descriptions string
	times        string
}

var (
	topicKV = kvKind{what: "topic", descriptions: topicDescriptions, times: topicTimes}
	groupKV = kvKind{what: "consumer group", descriptions: groupDescriptions, times: groupTimes}
)

// kvEntry is what the KV config holds of one topic or group.
type kvEntry struct {
	Description string
	// Created and Updated are Unix times in ms; 0 when unknown (an entry
	// written by an older rmqproxy, or by other tools, has a description
	// only).
	Created, Updated int64
}

// entryOf returns the entry of a topic or group with the given times.
func entryOf(desc string, created, updated time.Time) kvEntry {
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	}
	return kvEntry{Description: desc, Created: ms(created), Updated: ms(updated)}
}

// times returns the entry's created and updated times (zero when unknown).
func (e kvEntry) times() (created, updated time.Time) {
	at := func(ms int64) time.Time {
		if ms <= 0 {
			return time.Time{}
		}
		return time.UnixMilli(ms).UTC()
	}
	return at(e.Created), at(e.Updated)
}

// formatTimes and parseTimes are the times namespace's value.
func formatTimes(e kvEntry) string {
	return strconv.FormatInt(e.Created, 10) + " " + strconv.FormatInt(e.Updated, 10)
}

func parseTimes(v string) (created, updated int64, ok bool) {
	c, u, found := strings.Cut(v, " ")
	if !found {
		return 0, 0, false
	}
	created, err1 := strconv.ParseInt(c, 10, 64)
	updated, err2 := strconv.ParseInt(u, 10, 64)
	if err1 != nil || err2 != nil || created < 0 || updated < 0 {
		return 0, 0, false
	}
	return created, updated, true
}

// nsCopy is one NameServer's copy of a kind's entries.
type nsCopy struct {
	addr    string
	entries map[string]kvEntry
	err     error
}

// kvTable reads one namespace from the NameServer at addr; a namespace it
// never held is empty.
func (b *Broker) kvTable(ctx context.Context, addr, ns string) (map[string]string, error) {
	resp, err := b.invoke(ctx, addr, remoting.NewRequest(remoting.RequestGetKvlistByNamespace,
		remoting.EncodeHeader(&remoting.KVNamespaceRequestHeader{Namespace: ns}), nil))
	if err == nil {
		err = remoting.Expect(resp, remoting.ResponseSuccess, remoting.ResponseQueryNotFound)
	}
	if err != nil {
		return nil, err
	}
	if resp.Code == int32(remoting.ResponseQueryNotFound) {
		return nil, nil
	}
	var kv remoting.KVTable
	if err := remoting.DecodeJSONBody(resp.Body, &kv); err != nil {
		return nil, domain.Wrap(domain.ReasonBrokerError, err, "the KV config namespace "+ns+" could not be decoded")
	}
	return kv.Table, nil
}

// readCopy reads both namespaces of kind from the NameServer at addr.
func (b *Broker) readCopy(ctx context.Context, addr string, kind kvKind) nsCopy {
	c := nsCopy{addr: addr, entries: map[string]kvEntry{}}
	descs, err := b.kvTable(ctx, addr, kind.descriptions+b.cfg.ClusterName)
	if err != nil {
		c.err = err
		return c
	}
	times, err := b.kvTable(ctx, addr, kind.times+b.cfg.ClusterName)
	if err != nil {
		c.err = err
		return c
	}
	for name, d := range descs {
		c.entries[name] = kvEntry{Description: d}
	}
	for name, v := range times {
		if created, updated, ok := parseTimes(v); ok {
			e := c.entries[name]
			e.Created, e.Updated = created, updated
			c.entries[name] = e
		}
	}
	return c
}

// entries returns the entries of one kind: every NameServer is asked, and
// each entry is the copy with the latest updated time among those that
// answered (the first NameServer's on a tie). A NameServer whose copy of
// an entry of a live topic or group (live reports which) differs is given
// the latest one. It fails, naming the namespace, when no NameServer
// answers: without the descriptions an update would clear them.
func (b *Broker) entries(ctx context.Context, kind kvKind, live func(name string) bool) (map[string]kvEntry, error) {
	copies := atOnce(b.cfg.NameServers, func(addr string) nsCopy { return b.readCopy(ctx, addr, kind) })
	var answered []nsCopy
	var firstErr error
	for _, c := range copies {
		if c.err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("NameServer %s: %w", c.addr, c.err)
			}
			continue
		}
		answered = append(answered, c)
	}
	if len(answered) == 0 {
		ns := kind.descriptions + b.cfg.ClusterName
		return nil, domain.Wrap(domain.ReasonOf(mapError(firstErr)), firstErr,
			fmt.Sprintf("the descriptions are kept by the NameServers (KV config namespace %s), which could not be read: %v", ns, firstErr))
	}
	latest := map[string]kvEntry{}
	for _, c := range answered {
		for name, e := range c.entries {
			if cur, ok := latest[name]; !ok || e.Updated > cur.Updated {
				latest[name] = e
			}
		}
	}
	for name, e := range latest {
		if e.Updated == 0 || !live(name) {
			continue // nothing tells which copy is right, or nothing to repair
		}
		for _, c := range answered {
			if c.entries[name] == e {
				continue
			}
			if err := b.storeOn(ctx, c.addr, kind, name, e); err != nil {
				b.log.Warn("a NameServer holds an older description of a "+kind.what+" and could not be given the latest",
					"nameserver", c.addr, kind.what, name, "error", err)
				continue
			}
			b.log.Info("gave a NameServer the latest description of a "+kind.what+" (it had missed a change)",
				"nameserver", c.addr, kind.what, name)
		}
	}
	return latest, nil
}

// storeEntry writes a topic's or group's entry to every NameServer; the
// zero entry deletes it. It tries each NameServer once (see
// [Broker.everyNameServer]).
func (b *Broker) storeEntry(ctx context.Context, kind kvKind, name string, e kvEntry) error {
	return b.everyNameServer(func(addr string) error { return b.storeOn(ctx, addr, kind, name, e) })
}

// everyNameServer runs f for every NameServer at once (see atOnce), and
// returns the failures, each naming its NameServer, in the
// order of cluster.nameServers, joined in a *storeError; nil when none
// failed. Asked one after the other, a hung NameServer held a command up
// for its whole timeout before the next was asked, and when the command's
// deadline passed meanwhile, those after it were not told at all.
func (b *Broker) everyNameServer(f func(addr string) error) error {
	errs := atOnce(b.cfg.NameServers, f)
	se := &storeError{total: len(errs)}
	for i, err := range errs {
		if err != nil {
			se.failed = append(se.failed, fmt.Errorf("NameServer %s: %w", b.cfg.NameServers[i], err))
		}
	}
	if len(se.failed) == 0 {
		return nil
	}
	return se
}

// storeOn writes an entry to the NameServer at addr: the description
// (PUT_KV_CONFIG, or DELETE_KV_CONFIG when empty) and then, only once the
// description is stored, the times, so that a copy never claims a newer
// update than its description is.
func (b *Broker) storeOn(ctx context.Context, addr string, kind kvKind, name string, e kvEntry) error {
	kv := func(code remoting.RequestCode, ns, value string) error {
		h := &remoting.KVConfigRequestHeader{Namespace: ns + b.cfg.ClusterName, Key: name, Value: value}
		resp, err := b.invoke(ctx, addr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
		if err == nil {
			err = remoting.Expect(resp)
		}
		return err
	}
	var err error
	if e.Description == "" {
		err = kv(remoting.RequestDeleteKvConfig, kind.descriptions, "")
	} else {
		err = kv(remoting.RequestPutKvConfig, kind.descriptions, e.Description)
	}
	if err != nil {
		return err
	}
	if e == (kvEntry{}) {
		return kv(remoting.RequestDeleteKvConfig, kind.times, "")
	}
	return kv(remoting.RequestPutKvConfig, kind.times, formatTimes(e))
}

// storeError says which NameServers did not take a description.
type storeError struct {
	total  int
	failed []error
}

func (e *storeError) Error() string {
	msgs := make([]string, len(e.failed))
	for i, err := range e.failed {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("%d of %d NameServers failed: %s", len(e.failed), e.total, strings.Join(msgs, "; "))
}

func (e *storeError) Unwrap() []error { return e.failed }

// descriptionFailed reports, after a topic or group change took effect
// (what: "topic \"x\" was created"), that its description was not stored
// on every NameServer, and what to do about it (advice). Its reason is the
// first failure's (UNAVAILABLE for a NameServer that cannot be reached).
func descriptionFailed(what string, err error, advice string) error {
	var se *storeError
	reason := domain.ReasonBrokerError
	if errors.As(err, &se) && len(se.failed) > 0 {
		reason = domain.ReasonOf(mapError(se.failed[0]))
	}
	return domain.Wrap(reason, err, fmt.Sprintf("%s, but its description was not stored on every NameServer (%v); %s", what, err, advice))
}

// atOnce runs f on every item at the same time and returns the results in
// the items' order: the NameServers and the masters are asked so, so that
// a hung one delays none of the others (each call is bounded by its own
// deadline).
func atOnce[T, R any](items []T, f func(T) R) []R {
	out := make([]R, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { out[i] = f(it) })
	}
	wg.Wait()
	return out
}
