package application

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// ClientOps is what operators do with the connected clients: list them,
// and ask one, through its command stream, for its thread stacks or to
// consume a stored message as a check. It serves the admin API.
type ClientOps struct {
	sessions *Sessions
	lookup   ports.MessageLookup // nil: verify answers NOT_IMPLEMENTED
	timeout  time.Duration
	log      *slog.Logger
}

// NewClientOps returns the client operations over the session registry.
// lookup may be nil when the broker side cannot find a message by id;
// relay, when set, is a broker side whose brokers ask about the consumers
// (GET_CONSUMER_RUNNING_INFO) or have one consume a message
// (CONSUME_MESSAGE_DIRECTLY), and gets ConsumerRunningInfo and
// ConsumeDirectly as its handlers.
func NewClientOps(cfg Config, sessions *Sessions, lookup ports.MessageLookup, relay ports.ConsumerRelay, log *slog.Logger) *ClientOps {
	o := &ClientOps{sessions: sessions, lookup: lookup, timeout: cfg.Clients.CommandTimeout, log: log}
	if relay != nil {
		relay.SetConsumerRunningInfoHandler(o.ConsumerRunningInfo)
		relay.SetConsumeDirectlyHandler(o.ConsumeDirectly)
	}
	return o
}

// maxStackRequests bounds the thread stack requests ConsumerRunningInfo
// has in flight at once.
const maxStackRequests = 16

// ConsumerRunningInfo describes the connected consumers of a group for a
// broker's GET_CONSUMER_RUNNING_INFO: who they are, since when, what they
// subscribe to and, with withStacks, the thread stacks each answers within
// messaging.clients.commandTimeout (asked at once, up to 16 at a time).
// The Apache proxy relays a jstack request to one gRPC client only when it
// runs in the broker's process; here the broker sees one registration per
// proxy, so the answer covers all of the group's clients of this proxy.
func (o *ClientOps) ConsumerRunningInfo(ctx context.Context, group string, withStacks bool) (ports.ConsumerRunningInfo, error) {
	var out ports.ConsumerRunningInfo
	subs := map[string]ports.Subscription{}
	s := o.sessions
	s.mu.Lock()
	for id, cur := range s.byGroup[group] {
		sub := cur.settings.Subscription
		if sub == nil || sub.Group != group {
			continue
		}
		out.Clients = append(out.Clients, id)
		out.Push = out.Push || cur.settings.ClientType == ClientTypePushConsumer
		if out.Since.IsZero() || cur.since.Before(out.Since) {
			out.Since = cur.since
		}
		for _, e := range sub.Entries {
			subs[e.Topic] = ports.Subscription{Topic: e.Topic, Filter: e.Filter}
		}
	}
	slices.Sort(out.Clients)
	for _, id := range out.Clients {
		st := s.clients[id].settings
		out.Versions = append(out.Versions, strings.TrimSpace(st.Language+" "+st.Version))
	}
	s.mu.Unlock()
	if len(out.Clients) == 0 {
		return out, domain.Errorf(domain.ReasonNotFound, "no consumer of group %s is connected to this proxy", group)
	}
	for _, t := range slices.Sorted(maps.Keys(subs)) {
		out.Subscriptions = append(out.Subscriptions, subs[t])
	}
	if withStacks {
		out.Stacks = o.stacks(ctx, out.Clients)
	}
	return out, nil
}

// stacks asks each client for its thread stacks, up to maxStackRequests at
// once, and joins the answers in the order of ids.
func (o *ClientOps) stacks(ctx context.Context, ids []string) string {
	texts := make([]string, len(ids))
	sem := make(chan struct{}, maxStackRequests)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ch, err := o.commandChannel(id)
			var r ClientReply
			if err == nil {
				r, err = o.ask(ctx, id, ch, "thread stack", func(nonce string) ports.ClientCommand {
					return ports.ClientCommand{PrintThreadStack: &ports.ThreadStackCommand{Nonce: nonce}}
				})
			}
			switch {
			case err != nil:
				texts[i] = fmt.Sprintf("client %s: no thread stacks: %s\n", id, domain.MessageOf(err))
			case !r.OK():
				texts[i] = fmt.Sprintf("client %s: answered %s %s\n", id, r.Code, r.Message)
			default:
				texts[i] = fmt.Sprintf("client %s:\n%s\n", id, strings.TrimRight(r.StackTrace, "\n"))
			}
		})
	}
	wg.Wait()
	return strings.Join(texts, "\n")
}

// ClientFilter selects clients in a listing; empty fields match all.
type ClientFilter struct {
	// Group matches consumers of that consumer group.
	Group string
	// Topic matches producers that declared the topic and consumers that
	// subscribe to it.
	Topic string
}

// ClientInfo describes one known client.
type ClientInfo struct {
	ClientID          string
	Type              ClientType
	Language, Version string
	// Group is a consumer's group.
	Group string
	// Topics are what a producer publishes to or a consumer subscribes to.
	Topics     []string
	RemoteAddr netip.AddrPort
	// Since is when this proxy first heard of the client, LastSeen its
	// last heartbeat, settings or receive.
	Since, LastSeen time.Time
	// Streaming says the client's command stream (Telemetry) to this
	// proxy is open: only then do stack and verify reach it.
	Streaming bool
}

// Kind is "producer", "consumer" or "" (a client that declared neither).
func (c ClientInfo) Kind() string {
	switch {
	case c.Type == ClientTypeProducer:
		return "producer"
	case c.Type.IsConsumer() || c.Group != "":
		return "consumer"
	}
	return ""
}

// Clients lists the known clients that match f, sorted by client id.
func (o *ClientOps) Clients(f ClientFilter) []ClientInfo {
	s := o.sessions
	s.mu.Lock()
	out := make([]ClientInfo, 0, len(s.clients))
	for id, cur := range s.clients {
		c := ClientInfo{ClientID: id, Type: cur.settings.ClientType, Language: cur.settings.Language, Version: cur.settings.Version,
			RemoteAddr: cur.settings.RemoteAddr, Since: cur.since, LastSeen: cur.lastSeen, Streaming: isOpen(cur.channel())}
		if p := cur.settings.Publishing; p != nil {
			c.Topics = slices.Clone(p.Topics)
		}
		if sub := cur.settings.Subscription; sub != nil {
			c.Group = sub.Group
			for _, e := range sub.Entries {
				c.Topics = append(c.Topics, e.Topic)
			}
		}
		slices.Sort(c.Topics)
		c.Topics = slices.Compact(c.Topics)
		if (f.Group == "" || c.Group == f.Group) && (f.Topic == "" || slices.Contains(c.Topics, f.Topic)) {
			out = append(out, c)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b ClientInfo) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return out
}

func isOpen(ch ports.ClientChannel) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch.Done():
		return false
	default:
		return true
	}
}

// ClientReply is a client's answer to a command on its command stream.
type ClientReply struct {
	// Nonce is the command's.
	Nonce string
	// Code is the name of the client's status code (apache.rocketmq.v2.Code:
	// OK, NOT_IMPLEMENTED, FAILED_TO_CONSUME_MESSAGE, ...), Message its text.
	Code    string
	Message string
	// StackTrace is the answer to a thread stack request.
	StackTrace string
}

// OK reports whether the client answered with status OK.
func (r ClientReply) OK() bool { return r.Code == "OK" }

// ThreadStack asks a client for its thread stacks and waits for the answer
// up to messaging.clients.commandTimeout.
func (o *ClientOps) ThreadStack(ctx context.Context, clientID string) (ClientReply, error) {
	ch, err := o.commandChannel(clientID)
	if err != nil {
		return ClientReply{}, err
	}
	return o.ask(ctx, clientID, ch, "thread stack", func(nonce string) ports.ClientCommand {
		return ports.ClientCommand{PrintThreadStack: &ports.ThreadStackCommand{Nonce: nonce}}
	})
}

// VerifyMessage looks the message up in topic and asks a consumer to
// consume it as a check, waiting for the answer up to
// messaging.clients.commandTimeout. The consumer's verdict is in the
// reply's code (OK: consumed).
func (o *ClientOps) VerifyMessage(ctx context.Context, clientID, topic, messageID string) (ClientReply, error) {
	if err := domain.ValidateTopicName(topic); err != nil {
		return ClientReply{}, err
	}
	if messageID == "" {
		return ClientReply{}, domain.Errorf(domain.ReasonIllegalMessageID, "a message id is required (the id the producer got from its send)")
	}
	ch, err := o.commandChannel(clientID)
	if err != nil {
		return ClientReply{}, err
	}
	if st, _ := o.sessions.Settings(clientID); !st.ClientType.IsConsumer() {
		return ClientReply{}, domain.Errorf(domain.ReasonBadRequest,
			"client %s is a %s; only a push or simple consumer can verify a message", clientID, st.ClientType)
	}
	if o.lookup == nil {
		return ClientReply{}, domain.Errorf(domain.ReasonNotImplemented, "this proxy's broker cannot look a message up by id")
	}
	msg, err := o.lookup.LookupMessage(ctx, topic, messageID)
	if err != nil {
		return ClientReply{}, err
	}
	return o.ask(ctx, clientID, ch, "verify message", func(nonce string) ports.ClientCommand {
		return ports.ClientCommand{VerifyMessage: &ports.VerifyMessageCommand{Nonce: nonce, Message: msg}}
	})
}

// ConsumeDirectly has a consumer of group consume msg as a check, for a
// broker's CONSUME_MESSAGE_DIRECTLY (an admin tool's request, which names
// this proxy as the client: the brokers know it as one client of every
// group of its clients). It asks the group's consumers connected to this
// proxy that subscribe to the message's topic and have an open Telemetry
// stream, push consumers first (the official Java push consumer is the one
// client that runs its listener on a VerifyMessageCommand; the others
// answer NOT_IMPLEMENTED), then by client id; a consumer that answers
// NOT_IMPLEMENTED or cannot be sent the request hands it to the next one.
// Each waits up to messaging.clients.commandTimeout, all within ctx. It
// returns the first other answer, or the last NOT_IMPLEMENTED.
func (o *ClientOps) ConsumeDirectly(ctx context.Context, group string, msg domain.StoredMessage) (ports.ConsumeDirectlyAnswer, error) {
	ids, err := o.directCandidates(group, msg.Topic)
	if err != nil {
		return ports.ConsumeDirectlyAnswer{}, err
	}
	var last ports.ConsumeDirectlyAnswer
	var lastErr error
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		ch, err := o.commandChannel(id)
		var r ClientReply
		if err == nil {
			r, err = o.ask(ctx, id, ch, "verify message", func(nonce string) ports.ClientCommand {
				return ports.ClientCommand{VerifyMessage: &ports.VerifyMessageCommand{Nonce: nonce, Message: msg}}
			})
		}
		switch {
		case err != nil && domain.ReasonOf(err) == domain.ReasonUnavailable:
			lastErr = err // its stream closed meanwhile: ask the next one
			continue
		case err != nil:
			return ports.ConsumeDirectlyAnswer{}, err
		}
		last = ports.ConsumeDirectlyAnswer{ClientID: id, Code: r.Code, Message: r.Message, Asked: last.Asked + 1}
		if r.Code != "NOT_IMPLEMENTED" {
			return last, nil
		}
	}
	if last.ClientID != "" {
		return last, nil
	}
	if lastErr == nil {
		lastErr = context.Cause(ctx)
	}
	return ports.ConsumeDirectlyAnswer{}, lastErr
}

// directCandidates lists the consumers ConsumeDirectly asks, in order, or
// says precisely why there is none.
func (o *ClientOps) directCandidates(group, topic string) ([]string, error) {
	type candidate struct {
		id   string
		push bool
	}
	var in, streaming []candidate
	var others []string // topics the group's consumers subscribe to
	s := o.sessions
	s.mu.Lock()
	for id, cur := range s.byGroup[group] {
		sub := cur.settings.Subscription
		if sub == nil || sub.Group != group || !cur.settings.ClientType.IsConsumer() {
			continue
		}
		covers := false
		for _, e := range sub.Entries {
			covers = covers || e.Topic == topic
			others = append(others, e.Topic)
		}
		if !covers {
			continue
		}
		c := candidate{id: id, push: cur.settings.ClientType == ClientTypePushConsumer}
		in = append(in, c)
		if isOpen(cur.channel()) {
			streaming = append(streaming, c)
		}
	}
	s.mu.Unlock()
	switch {
	case len(in) == 0 && len(others) == 0:
		return nil, domain.Errorf(domain.ReasonNotFound, "no consumer of group %s is connected to this proxy", group)
	case len(in) == 0:
		slices.Sort(others)
		return nil, domain.Errorf(domain.ReasonNotFound, "no consumer of group %s connected to this proxy subscribes to topic %s (they subscribe to %s)",
			group, topic, strings.Join(slices.Compact(others), ", "))
	case len(streaming) == 0:
		return nil, domain.Errorf(domain.ReasonUnavailable,
			"no consumer of group %s subscribing to topic %s has an open Telemetry stream to this proxy, and a request reaches a client only through it; a client opens one with its next settings sync (within 5 minutes)",
			group, topic)
	}
	slices.SortFunc(streaming, func(a, b candidate) int {
		if a.push != b.push {
			if a.push {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.id, b.id)
	})
	ids := make([]string, len(streaming))
	for i, c := range streaming {
		ids[i] = c.id
	}
	return ids, nil
}

// commandChannel returns the open command stream of a client.
func (o *ClientOps) commandChannel(clientID string) (ports.ClientChannel, error) {
	if clientID == "" {
		return nil, domain.Errorf(domain.ReasonClientIDRequired, "a client id is required; rmqproxy client list shows them")
	}
	ch, ok := o.sessions.channel(clientID)
	if !ok {
		return nil, domain.Errorf(domain.ReasonNotFound, "no client %s is known to this proxy; rmqproxy client list shows the connected ones", clientID)
	}
	if !isOpen(ch) {
		return nil, domain.Errorf(domain.ReasonUnavailable,
			"client %s has no open Telemetry stream to this proxy, and commands reach a client only through it; the client opens one with its next settings sync (within 5 minutes)", clientID)
	}
	return ch, nil
}

// ask sends the command build makes with a fresh nonce and waits for the
// client's answer carrying that nonce.
func (o *ClientOps) ask(ctx context.Context, clientID string, ch ports.ClientChannel, what string, build func(nonce string) ports.ClientCommand) (ClientReply, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	nonce, answer := o.sessions.replies.await(clientID)
	defer o.sessions.replies.forget(nonce)
	if err := ch.Send(ctx, build(nonce)); err != nil {
		return ClientReply{}, domain.Wrap(domain.ReasonUnavailable, err, "cannot send the "+what+" request to client "+clientID)
	}
	answered := func(r ClientReply) (ClientReply, error) {
		o.log.LogAttrs(ctx, slog.LevelInfo, "client answered", slog.String("client_id", clientID), slog.String("request", what),
			slog.String("nonce", nonce), slog.String("code", r.Code))
		return r, nil
	}
	select {
	case r := <-answer:
		return answered(r)
	case <-ctx.Done():
		// An answer in by now is the answer: a select with both ready
		// chooses either, and a wait that starts late (a busy machine, a
		// Send that took the whole time) finds both ready.
		select {
		case r := <-answer:
			return answered(r)
		default:
		}
		if err := context.Cause(ctx); err != context.DeadlineExceeded {
			return ClientReply{}, err
		}
		return ClientReply{}, domain.Errorf(domain.ReasonTimeout,
			"client %s did not answer the %s request within %v (messaging.clients.commandTimeout): it may not support the request, or be busy or stalled", clientID, what, o.timeout)
	}
}

// ClientReplied hands a client's answer on its command stream to the
// operation waiting for it. An answer nobody waits for (late, or with a
// nonce of another client) is dropped, and so is one on a stream of
// another user than the client's (client ids are the clients' choice).
func (m *Messaging) ClientReplied(ctx context.Context, r ClientReply) {
	clientID := ports.RequestInfoFrom(ctx).ClientID
	if _, _, err := m.sessions.owned(clientID, userOf(ctx)); err != nil {
		m.log.LogAttrs(ctx, slog.LevelDebug, "client answer from another user's stream dropped", slog.String("client_id", clientID), slog.String("nonce", r.Nonce))
		return
	}
	if !m.sessions.replies.complete(clientID, r) {
		m.log.LogAttrs(ctx, slog.LevelDebug, "client answer nobody waits for", slog.String("client_id", clientID), slog.String("nonce", r.Nonce))
	}
}

// pendingReplies are the answers awaited from clients, by nonce. Nonces are
// decimal numbers from a per-proxy counter, as the Apache proxy's; an
// answer completes a wait only when it comes from the client asked. The
// zero value is ready to use; entries live as long as their waiter (await
// ... forget), so the map is bounded by the operations in progress.
type pendingReplies struct {
	next atomic.Uint64
	mu   sync.Mutex
	m    map[string]pendingReply
}

type pendingReply struct {
	clientID string
	answer   chan ClientReply // capacity 1: complete never blocks
}

func (p *pendingReplies) await(clientID string) (string, <-chan ClientReply) {
	nonce := strconv.FormatUint(p.next.Add(1), 10)
	ch := make(chan ClientReply, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]pendingReply{}
	}
	p.m[nonce] = pendingReply{clientID: clientID, answer: ch}
	return nonce, ch
}

func (p *pendingReplies) forget(nonce string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, nonce)
}

func (p *pendingReplies) complete(clientID string, r ClientReply) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.m[r.Nonce]
	if !ok || w.clientID != clientID {
		return false
	}
	delete(p.m, r.Nonce)
	w.answer <- r
	return true
}
