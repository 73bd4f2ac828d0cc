package cluster

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// maxPopBatch is the most messages one POP_MESSAGE asks for (the Apache
// proxy's ProxyUtils.MAX_MSG_NUMS_FOR_POP_REQUEST).
const maxPopBatch = 32

// pollReserve is kept between the end of a broker's long poll and the
// caller's deadline, so that the broker's answer (and the messages it
// popped) arrives before the caller gives up.
func pollReserve(remaining time.Duration) time.Duration {
	return min(max(remaining/10, 200*time.Millisecond), time.Second)
}

// Pop implements [ports.Broker] with one POP_MESSAGE to one broker: the
// one the client names, else the next readable one in turn (avoiding an
// isolated one). The broker long-polls for the polling time; its
// checkpoints become the receipt handles. Messages the filter does not
// match (a tag hash collision at the broker) are acked and dropped, as the
// Apache proxy does.
func (b *Broker) Pop(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
	start := time.Now()
	broker, addr, err := b.popTarget(ctx, req)
	if err != nil {
		return nil, err
	}
	f, expType, exp := remotingExpression(req.Filter)
	// BornTime 0: the broker stamps the request with its own clock. It
	// times the long poll from bornTime (it ends at bornTime + pollTime)
	// and answers POLLING_TIMEOUT at once when that lies more than 500 ms
	// in its past, so this host's clock must not stand in for the
	// broker's: behind it by more than the poll, no pop would ever find a
	// message; ahead, every empty poll would outlast the client's wait.
	// The Apache proxy sends 0 too.
	h := remoting.PopMessageRequestHeader{RPC: remoting.RPC{BrokerName: broker}, ConsumerGroup: req.Group, Topic: req.Topic,
		QueueID: req.QueueID, MaxMsgNums: min(max(req.MaxMessages, 1), maxPopBatch), InvisibleTime: req.InvisibleTime.Milliseconds(),
		BornTime: 0, InitMode: remoting.InitModeMax,
		ExpType: expType, Exp: exp, Order: req.FIFO, AttemptID: req.AttemptID}
	// pop sends h to addr, polling for what is left of the requested
	// time. h stays on the stack (NewHeaderRequest's interface would move
	// it to the heap), and the late handler reads what it needs from the
	// request: no allocation per receive for either.
	pop := func(addr string) (*remoting.Command, error) {
		poll, timeout := b.pollBudget(ctx, req.PollTimeout-time.Since(start))
		h.PollTime = poll.Milliseconds()
		pr := remoting.NewRequestWithRoom(remoting.RequestPopMessage, nil)
		pr.Fields = h.AppendFields(pr.Fields)
		resp, err := b.poll(ctx, addr, pr, timeout, b.latePop)
		if err == nil && remoting.ResponseCode(resp.Code) == remoting.ResponseGoAway {
			return nil, expect(remoting.RequestPopMessage, resp) // shutting down: see brokerAway
		}
		return resp, err
	}
	resp, err := pop(addr)
	for moved := false; err != nil && ctx.Err() == nil; {
		b.failed(broker, err)
		b.log.LogAttrs(ctx, slog.LevelDebug, "a pop failed", slog.String("broker", broker), slog.String("consumer_group", req.Group),
			slog.String("topic", req.Topic), slog.Any("error", err))
		if a := b.movedBroker(ctx, broker, addr, err); a != "" && !moved {
			// Restarted elsewhere (see [Broker.movedBroker]): nothing was
			// sent, nothing popped.
			moved, addr = true, a
			resp, err = pop(addr)
			continue
		}
		if !brokerAway(err) || !b.waitBrokerBack(ctx, req.PollTimeout-time.Since(start)) {
			break
		}
		// The broker went away (restarting: it closed the connection
		// unanswered, or takes none); the pop is sent again, within the
		// polling time, where the route read again says (another broker
		// when the client named none), else where it went before: while
		// the only broker of a cluster restarts, the NameServers route the
		// topic nowhere. A pop the broker executed before its answer was
		// lost made its messages invisible: they come again after their
		// invisible time, as with the Apache proxy.
		if bn, a, err := b.popTarget(ctx, req); err == nil {
			broker, addr = bn, a
		}
		h.BrokerName = broker
		resp, err = pop(addr)
	}
	if err != nil {
		b.log.LogAttrs(ctx, slog.LevelDebug, "a pop ended without an answer", slog.String("broker", broker), slog.String("consumer_group", req.Group),
			slog.String("topic", req.Topic), slog.Duration("took", time.Since(start)), slog.Any("error", err))
		return nil, mapError(err)
	}
	switch remoting.ResponseCode(resp.Code) {
	case remoting.ResponseSuccess:
	case remoting.ResponsePollingTimeout, remoting.ResponsePullNotFound, remoting.ResponseNoMessage:
		return nil, nil
	case remoting.ResponsePollingFull:
		return nil, domain.Errorf(domain.ReasonTooManyRequests, "polling full")
	default:
		err := expect(remoting.RequestPopMessage, resp)
		if isCode(err, remoting.ResponseTopicNotExist) {
			b.meta.invalidateTopic(req.Topic)
		}
		return nil, mapError(err)
	}
	raw, cks, err := popped(resp, req, broker)
	if err != nil {
		return nil, err
	}
	if b.log.Enabled(ctx, slog.LevelDebug) {
		b.log.LogAttrs(ctx, slog.LevelDebug, "popped", slog.String("broker", broker), slog.String("consumer_group", req.Group),
			slog.String("topic", req.Topic), slog.Duration("took", time.Since(start)), slog.String("msg_ids", rawIDs(raw)))
	}
	return b.deliveries(ctx, req, broker, f, raw, cks), nil
}

// rawIDs is the message ids of raw, space separated, for debug logs that
// a test searches for a message's id.
func rawIDs(raw []remoting.Message) string {
	var sb strings.Builder
	for i := range raw {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(raw[i].MsgID())
	}
	return sb.String()
}

// deliveries turns the messages of a pop answer (with their checkpoints,
// see [popped]) into the messages delivered to the receive: a message
// without a usable checkpoint is left out (the broker delivers it again
// after its invisible time), one that f refuses is acked and left out.
func (b *Broker) deliveries(ctx context.Context, req ports.PopRequest, broker string, f filter.Filter, raw []remoting.Message, cks []remoting.ExtraInfo) []domain.StoredMessage {
	out := make([]domain.StoredMessage, 0, len(raw))
	var hosts hostName
	// The receipt handles' text, written one after the other and made one
	// string at the end, of which each message's handle is a part: on the
	// stack for a usual answer (32 handles of some 50-90 bytes).
	var textRoom [4096]byte
	var spanRoom [maxPopBatch][2]int
	text, spans := textRoom[:0], spanRoom[:0]
	for i := range raw {
		m := &raw[i]
		handle, err := popHandle(m, cks[i])
		if err != nil {
			b.log.LogAttrs(ctx, slog.LevelWarn, "a popped message has no usable checkpoint; it becomes visible again after its invisible time",
				slog.String("broker", broker), slog.String("msg_id", m.MsgID()), slog.Any("error", err))
			continue
		}
		// Built in place in out (a local would escape to the filter, one
		// allocation per message) and taken back when it is filtered out.
		out = append(out, storedMessageOf(m, req.Topic, broker, &hosts))
		sm := &out[len(out)-1]
		if !f.Match(&sm.Message) {
			// Not for this subscription (the broker filters tags by hash):
			// consumed silently.
			id := sm.ID
			*sm = domain.StoredMessage{} // keep no reference to it in out's room
			out = out[:len(out)-1]
			if err := b.Ack(context.WithoutCancel(ctx), ports.AckRequest{Group: req.Group, Topic: req.Topic, MessageID: id, Handle: handle}); err != nil {
				b.log.LogAttrs(ctx, slog.LevelDebug, "acking a filtered-out message failed; the broker redelivers it later",
					slog.String("msg_id", id), slog.Any("error", err))
			}
			continue
		}
		from := len(text)
		text = handle.Append(text)
		spans = append(spans, [2]int{from, len(text)})
	}
	all := string(text)
	for k, sp := range spans {
		out[k].ReceiptHandle = all[sp[0]:sp[1]]
	}
	return out
}

// popped decodes the messages of a successful POP_MESSAGE answer and the
// checkpoint of each (remoting.PopExtraInfos: as the broker's client
// would set them as POP_CK, without the text in between).
func popped(resp *remoting.Command, req ports.PopRequest, broker string) ([]remoting.Message, []remoting.ExtraInfo, error) {
	var ph remoting.PopMessageResponseHeader
	if err := ph.DecodeFields(resp.Fields); err != nil { // not decodeHeader: its interface moved ph to the heap
		return nil, nil, headerError(err)
	}
	raw, err := remoting.DecodeMessages(resp.Body)
	if err != nil {
		return nil, nil, domain.Wrap(domain.ReasonBrokerError, err, "the broker's pop answer could not be decoded")
	}
	if len(raw) > maxPopBatch {
		// Garbage: a broker answers at most the messages asked for (one
		// record per consume-queue unit), and finding each message's
		// checkpoint among the others takes time quadratic in their number.
		return nil, nil, domain.Errorf(domain.ReasonBrokerError,
			"the broker's pop answer carries %d messages, more than the %d a pop asks for at most", len(raw), maxPopBatch)
	}
	cks, err := remoting.PopExtraInfos(req.Topic, &ph, broker, req.FIFO, raw, nil)
	if err != nil {
		return nil, nil, domain.Wrap(domain.ReasonBrokerError, err, "the broker's pop answer carries no usable checkpoint")
	}
	return raw, cks, nil
}

// popHandle is the receipt handle of a popped message: its checkpoint ck
// (see [popped]) and its commit-log offset. A message whose own POP_CK
// does not parse has the zero ck, and gets the parse's error.
func popHandle(m *remoting.Message, ck remoting.ExtraInfo) (domain.ReceiptHandle, error) {
	if ck.BrokerName == "" {
		_, err := remoting.ParseExtraInfo(m.Properties.Value(remoting.PropertyPopCK))
		if err == nil { // cannot be: a parsed checkpoint names its broker
			err = errors.New("the pop checkpoint names no broker")
		}
		return domain.ReceiptHandle{}, err
	}
	h, _ := handleOf(ck, m.CommitLogOffset)
	return h, nil
}

// lateReleaseInvisibleTime is how long messages of a pop answer that came
// after the receive gave up stay invisible: as the Apache proxy's receive
// writer does for messages it cannot write to the client, they are made
// visible again after a second, not after the receive's invisible time.
const lateReleaseInvisibleTime = time.Second

// releaseLatePop handles a POP_MESSAGE answer that came after its receive
// gave up (a loaded broker answering past the deadline): the messages it
// popped would otherwise stay invisible for the whole invisible time and
// then come again as a second delivery attempt.
//
// A message whose invisible time has ended, or ends within the release
// margin (see [Broker.expiring]), is left alone: releasing it would gain
// little, and a release the broker applies too late delivers it twice. The
// answer may come up to a minute late (the Remoting client's late window),
// and the handle's pop time is the broker's clock, which this host's is
// assumed to follow. The group, topic, order and broker are those of the
// POP_MESSAGE request (pop), as Pop sent them.
func (b *Broker) releaseLatePop(ctx context.Context, _ string, pop, resp *remoting.Command) {
	if remoting.ResponseCode(resp.Code) != remoting.ResponseSuccess {
		return
	}
	var ph remoting.PopMessageRequestHeader
	if err := ph.DecodeFields(pop.Fields); err != nil { // cannot be: Pop encoded it
		b.log.LogAttrs(ctx, slog.LevelWarn, "a pop answer came after its receive gave up, and its request cannot be read back; its messages become visible after their invisible time",
			slog.Any("error", err))
		return
	}
	req := ports.PopRequest{Group: ph.ConsumerGroup, Topic: ph.Topic, FIFO: ph.Order}
	broker := ph.BrokerName
	raw, cks, err := popped(resp, req, broker)
	if err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "a pop answer came after its receive gave up and cannot be read; its messages become visible after their invisible time",
			slog.String("broker", broker), slog.Any("error", err))
		return
	}
	b.log.LogAttrs(ctx, slog.LevelDebug, "late pop answer", slog.String("broker", broker), slog.String("consumer_group", req.Group),
		slog.String("topic", req.Topic), slog.String("msg_ids", rawIDs(raw)))
	reqs := make([]ports.ChangeInvisibleRequest, 0, len(raw))
	now := b.clock.Now()
	expiring := 0
	for i := range raw {
		h, err := popHandle(&raw[i], cks[i])
		if err != nil {
			continue
		}
		rel := ports.ChangeInvisibleRequest{InvisibleTime: lateReleaseInvisibleTime, Release: true,
			AckRequest: ports.AckRequest{Group: req.Group, Topic: req.Topic, MessageID: raw[i].MsgID(), Handle: h}}
		// Visible within the release's second anyway, or too close to
		// its end for a release to be sent.
		if h.Expired(now.Add(lateReleaseInvisibleTime)) || b.expiring(rel) != nil {
			expiring++
			continue
		}
		reqs = append(reqs, rel)
	}
	var errs []error
	if len(reqs) > 0 {
		ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		_, errs = b.ChangeInvisibleBatch(ctx, reqs)
		cancel()
	}
	released := 0
	for i, err := range errs {
		switch {
		case err == nil:
			released++
		case errors.Is(err, ports.ErrHandleExpiring): // its time ran out meanwhile
			expiring++
		default:
			b.log.LogAttrs(ctx, slog.LevelWarn, "releasing a message of a late pop answer failed; it becomes visible after its invisible time",
				slog.String("broker", broker), slog.String("msg_id", reqs[i].MessageID), slog.Any("error", err))
		}
	}
	if expiring > 0 {
		b.log.LogAttrs(ctx, slog.LevelWarn, "a pop answer came after its receive gave up and so close to the end of its messages' invisible time (cluster.requestTimeout or less before it, or after it) that a release might reach the broker too late; they are left to the broker, which delivers them again",
			slog.String("broker", broker), slog.String("consumer_group", req.Group), slog.String("topic", req.Topic),
			slog.Int("messages", expiring))
	}
	if len(reqs) == 0 {
		return
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, "a pop answer came after its receive gave up; its messages were released to be delivered again in a second",
		slog.String("broker", broker), slog.String("consumer_group", req.Group), slog.String("topic", req.Topic),
		slog.Int("messages", len(raw)), slog.Int("released", released))
}

// popBroker returns the broker a receive goes to: the named one when it
// has a readable queue of the topic, else the next readable broker in
// turn that is not isolated (any readable one when all are).
func (b *Broker) popBroker(e *topicEntry, named string) (string, error) {
	var readable []string
	seen := map[string]bool{}
	for _, q := range e.route.Queues {
		if q.Permission.Readable() && !seen[q.BrokerName] {
			seen[q.BrokerName] = true
			readable = append(readable, q.BrokerName)
		}
	}
	if len(readable) == 0 {
		return "", domain.Errorf(domain.ReasonForbidden, "no readable queue")
	}
	if named != "" && seen[named] {
		return named, nil
	}
	now := b.clock.Now()
	turn := b.popTurns.Add(1)
	for i := range readable {
		n := readable[(int(turn)+i)%len(readable)]
		if !b.faults.isolated(n, now) {
			return n, nil
		}
	}
	return readable[int(turn)%len(readable)], nil
}

// handleBroker returns the address of the broker a receipt handle names.
func (b *Broker) handleBroker(ctx context.Context, h domain.ReceiptHandle) (string, error) {
	return b.meta.brokerAddr(ctx, h.BrokerName)
}

// popTarget returns the broker a receive pops at (see [Broker.popBroker])
// and its address, from the topic's route.
func (b *Broker) popTarget(ctx context.Context, req ports.PopRequest) (broker, addr string, err error) {
	e, err := b.meta.topic(ctx, req.Topic)
	if err != nil {
		return "", "", err
	}
	if broker, err = b.popBroker(e, req.BrokerName); err != nil {
		return "", "", err
	}
	addr, err = e.addr(broker)
	return broker, addr, err
}

// brokerAwayPause is how long a receive whose broker went away (see
// [brokerAway]) waits before it pops again.
const brokerAwayPause = time.Second

// brokerAway reports whether err says that a broker is away, restarting
// or down, rather than slow or refusing: the connection closed before its
// answer, no connection could be made, or it answered GO_AWAY (shutting
// down, the request not acted on).
func brokerAway(err error) bool {
	if isCode(err, remoting.ResponseGoAway) {
		return true
	}
	var ce *client.Error
	return errors.As(err, &ce) && (ce.Kind == client.KindConnection || ce.Kind == client.KindDial)
}

// waitBrokerBack waits brokerAwayPause, for a receive with left of its
// polling time to pop again after its broker went away, and reports
// whether it may: not when the polling time (cut short by ctx's deadline,
// see [Broker.pollBudget]) ends within the pause, nor when ctx ends.
// Answered at once, the clients' push consumers receive again at once
// (20 ms later for the Java one, after UNAVAILABLE's TOO_MANY_REQUESTS),
// an error each time, all the while the broker is down; held, a receive
// fails at most once per polling time, and not at all when the broker is
// back within it.
func (b *Broker) waitBrokerBack(ctx context.Context, left time.Duration) bool {
	if poll, _ := b.pollBudget(ctx, left); poll <= brokerAwayPause {
		return false
	}
	t := time.NewTimer(brokerAwayPause)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// unsentDial reports whether err is a call's that could not be sent
// because no connection to its address could be made.
func unsentDial(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Kind == client.KindDial && !ce.MaybeDelivered()
}

// movedBroker returns the address to send a request for broker name to
// again after it failed at addr with err, or "" when it is not to be sent
// again: only a request that certainly was not sent (no connection could
// be made to addr), and only when the NameServers, asked again, name
// another address for the broker (restarted elsewhere: a Kubernetes pod's
// new IP, a new port). Without it, the acks and changes of the handles a
// broker minted before it moved failed until the cluster view was read
// again, each a redelivery for the consumer. The failure at addr has made
// the view stale (see [Broker.failed]), so it is read again here.
func (b *Broker) movedBroker(ctx context.Context, name, addr string, err error) string {
	if ctx.Err() != nil || !unsentDial(err) {
		return ""
	}
	a, aerr := b.meta.brokerAddr(ctx, name)
	if aerr != nil || a == addr {
		return ""
	}
	return a
}

// ChangeInvisible implements [ports.Broker]: CHANGE_MESSAGE_INVISIBLETIME to
// the handle's broker; the new handle is the new checkpoint with the same
// commit-log offset.
func (b *Broker) ChangeInvisible(ctx context.Context, req ports.ChangeInvisibleRequest) (domain.ReceiptHandle, error) {
	h := req.Handle
	// Checked before the broker is looked up too: an expired handle is
	// refused as expired, as the Apache proxy refuses it, whatever broker
	// it names.
	if err := b.expiring(req); err != nil {
		return domain.ReceiptHandle{}, err
	}
	addr, err := b.handleBroker(ctx, h)
	if err != nil {
		return domain.ReceiptHandle{}, err
	}
	if err := b.expiring(req); err != nil {
		return domain.ReceiptHandle{}, err
	}
	ch := remoting.ChangeInvisibleTimeRequestHeader{RPC: remoting.RPC{BrokerName: h.BrokerName}, ConsumerGroup: req.Group,
		Topic: realTopic(req.Topic, req.Group, h), QueueID: h.QueueID, ExtraInfo: h.String(), Offset: h.QueueOffset,
		InvisibleTime: req.InvisibleTime.Milliseconds()}
	// As b.call and decodeHeader, with the headers' own methods called
	// directly: through the remoting.Header interface both headers moved
	// to the heap, two allocations per change.
	cmd := remoting.NewRequestWithRoom(remoting.RequestChangeMessageInvisibletime, nil)
	cmd.Fields = ch.AppendFields(cmd.Fields)
	resp, err := b.invoke(ctx, addr, cmd)
	if moved := b.movedBroker(ctx, h.BrokerName, addr, b.failedAt(h.BrokerName, err)); moved != "" {
		cmd = remoting.NewRequestWithRoom(remoting.RequestChangeMessageInvisibletime, nil)
		cmd.Fields = ch.AppendFields(cmd.Fields)
		resp, err = b.invoke(ctx, moved, cmd)
	}
	if err == nil {
		err = expect(remoting.RequestChangeMessageInvisibletime, resp)
	}
	if err != nil {
		b.failed(h.BrokerName, err)
		return domain.ReceiptHandle{}, mapError(err)
	}
	var cr remoting.ChangeInvisibleTimeResponseHeader
	if err := cr.DecodeFields(resp.Fields); err != nil {
		return domain.ReceiptHandle{}, headerError(err)
	}
	return handleOf(remoting.ChangedExtraInfo(&ch, &cr, h.BrokerName), h.CommitLogOffset)
}

// ForwardToDeadLetter implements [ports.Broker] as the Apache proxy does:
// CONSUMER_SEND_MSG_BACK with delay level -1 (straight to %DLQ%group) to
// the handle's broker, then an ack of the delivery. A failed ack is only
// logged: the message is in the dead-letter queue already, and a second
// delivery would be forwarded again.
//
// Unlike the Apache proxy it first reads the message the handle's
// commit-log offset names (VIEW_MESSAGE_BY_ID) and moves nothing unless it
// is a message of the request's topic (or of the group's pop retry topic
// for it): the broker copies whatever message is at that offset, and the
// request's group and topic are all the client was authorized for, so a
// handle of another topic's message (stolen, or made up: the offset is a
// plain number) would put that message into the client's own dead-letter
// queue, where its group may read it. Such a forward moves nothing and
// returns a *ports.ForwardRefusedError (the caller audits it and answers
// OK), as local mode does for a handle never delivered to the group.
//
// Nor does it move the message of a handle whose invisible time has
// ended when the move is to be sent (the Apache proxy moves it and then
// does not send the ack, ReceiptHandle.isExpired): the broker revives, or
// has revived, that checkpoint whatever comes after, so the message would
// be both in the dead-letter queue and delivered again, and, forwarded
// again, in the dead-letter queue twice. Such a forward moves nothing
// and returns nil: the message comes again, with its next delivery
// attempt and a valid handle, and that delivery decides (past the
// group's maximum attempts the receive moves it). A refusal would not
// end: the Go client v5.1.4 repeats a forward answered with any code but
// OK every second, with the same handle. A handle that expires while the
// move is on its way gets no margin, as a client's change gets none (see
// [Broker.expiring]): a margin would also hold back the receive's own
// forwards of pops with a short invisible time, every time they come.
func (b *Broker) ForwardToDeadLetter(ctx context.Context, req ports.AckRequest) error {
	h := req.Handle
	if h.CommitLogOffset < 0 {
		return domain.Errorf(domain.ReasonInvalidReceiptHandle, "commit log offset is empty")
	}
	addr, err := b.handleBroker(ctx, h)
	if err != nil {
		return err
	}
	err = b.handleNamesTopic(ctx, addr, req)
	if moved := b.movedBroker(ctx, h.BrokerName, addr, err); moved != "" {
		// Restarted elsewhere: the move goes there (see [Broker.movedBroker]).
		addr = moved
		err = b.handleNamesTopic(ctx, addr, req)
	}
	if err != nil {
		return err
	}
	// Checked when the move is sent, as a change is (see [Broker.expiring]).
	// Not an orderly pop's handle, as for an ack (see [Broker.expiredAck]):
	// the broker keeps no checkpoint to revive and takes the ack that
	// follows the move while the handle's pop is its queue's latest, which
	// the proxy's renewals keep; a FIFO push consumer's forward with the
	// handle it received, after the renewing instance was gone, moved
	// nothing and left the queue blocked until the renewed time ended.
	if h.ReviveQueueID != remoting.OrderlyReviveQid && b.expiring(ports.ChangeInvisibleRequest{AckRequest: req}) != nil {
		b.log.LogAttrs(ctx, slog.LevelInfo, "dead-letter forward of a receipt handle whose invisible time has ended; nothing moved: the broker delivers the message again, and that delivery decides (past the group's maximum attempts, the receive moves it)",
			slog.String("consumer_group", req.Group), slog.String("topic", req.Topic), slog.String("broker", h.BrokerName),
			slog.String("msg_id", req.MessageID))
		return nil
	}
	_, err = b.call(ctx, addr, remoting.RequestConsumerSendMsgBack, &remoting.ConsumerSendMsgBackRequestHeader{
		RPC: remoting.RPC{BrokerName: h.BrokerName}, Offset: h.CommitLogOffset, Group: req.Group, DelayLevel: -1,
		OriginMsgID: req.MessageID, OriginTopic: realTopic(req.Topic, req.Group, h), MaxReconsumeTimes: remoting.Int32(0)}, nil)
	if err != nil {
		b.failed(h.BrokerName, err)
		return mapError(err)
	}
	if err := b.Ack(ctx, req); err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "a message was forwarded to the dead-letter queue but acking it failed; it may be forwarded again",
			slog.String("consumer_group", req.Group), slog.String("msg_id", req.MessageID), slog.Any("error", err))
	}
	return nil
}

// handleNamesTopic checks that the message at the commit-log offset of
// req's handle belongs to req's topic, or to the pop retry topic of req's
// group for it (the two forms; the handle's topic type is the client's
// word): the topics the request was authorized for. Otherwise it returns
// a *ports.ForwardRefusedError: foreign_message for a message of another
// topic (answered OK), forged_handle for an offset where the broker shows
// no message (answered INVALID_RECEIPT_HANDLE): bytes that decode as no
// message, or an offset beyond its commit log (noMessageAtOffset).
func (b *Broker) handleNamesTopic(ctx context.Context, addr string, req ports.AckRequest) error {
	h := req.Handle
	resp, err := b.call(ctx, addr, remoting.RequestViewMessageById,
		&remoting.ViewMessageRequestHeader{Topic: realTopic(req.Topic, req.Group, h), Offset: h.CommitLogOffset}, nil)
	if noMessageAtOffset(err, h.CommitLogOffset) {
		return &ports.ForwardRefusedError{Reason: ports.ForwardForgedHandle, Err: domain.Wrap(domain.ReasonInvalidReceiptHandle, err,
			"the receipt handle's commit log offset names no message the broker holds (it lies beyond the broker's commit log, "+
				"or the message was removed); pass the handle of a received message unchanged")}
	}
	if err != nil {
		b.failed(h.BrokerName, err)
		return mapError(err)
	}
	m, err := remoting.DecodeMessage(resp.Body)
	if err != nil {
		return &ports.ForwardRefusedError{Reason: ports.ForwardForgedHandle, Err: domain.Wrap(domain.ReasonInvalidReceiptHandle, err,
			"the receipt handle's commit log offset names no message the broker could show; pass the handle of a received message unchanged")}
	}
	switch m.Topic {
	case req.Topic, remoting.PopRetryTopic(req.Topic, req.Group, false), remoting.PopRetryTopic(req.Topic, req.Group, true):
		return nil
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, "dead-letter forward of a receipt handle naming a message of another topic; nothing to move",
		slog.String("consumer_group", req.Group), slog.String("topic", req.Topic), slog.String("broker", h.BrokerName),
		slog.Int64("commit_log_offset", h.CommitLogOffset), slog.String("msg_id", req.MessageID))
	return &ports.ForwardRefusedError{Reason: ports.ForwardForeignMessage}
}

// batchParallelism bounds the broker calls one batch runs at once.
const batchParallelism = 16

// each runs f(i) for i in [0, n), at most batchParallelism at a time, and
// returns when all have returned.
func each(n int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	sem := make(chan struct{}, batchParallelism)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// expiring returns the error of a change that is not to be sent now (see
// [ports.Broker.ChangeInvisible]), or nil. A RocketMQ broker changes a
// checkpoint whatever its time (ChangeInvisibleTimeProcessor looks at the
// handle's pop and invisible time only to address the old checkpoint): it
// writes a new checkpoint, then an ack of the old one, both to the revive
// queue. PopReviveService revives a checkpoint once the revive queue has
// moved more than ackTimeInterval + 1 s (2 s) past its revive time (pop
// time + invisible time), timer messages coming up to a second early, and
// takes no notice of an ack that comes after it: a change the broker
// applies more than about a second after the old handle's end delivers
// the message twice, from the old checkpoint and from the new one.
//
// The check is made here, when the request is sent, not when the caller
// decided on it (a renewal scan or a batch may have waited meanwhile). A
// handle already expired is refused, as the Apache proxy refuses it
// (ReceiptHandle.isExpired, for clients and for its own renewals and
// releases alike). A release is refused as well when the handle expires
// within the release margin: the broker applies a request at the latest
// when its answer comes, which may take cluster.requestTimeout, and
// leaving a release out costs at most the margin's wait. A release of an
// orderly pop's handle gets no margin: the broker keeps no checkpoint for
// it, only the queue's next visible time, which a change whose pop time
// is not the queue's latest pop's leaves alone
// (ConsumerOrderInfoManager.updateNextVisibleTime). Renewals and
// client requests get no margin: a renewal or a client's extension left
// out makes the message come again for sure, while sent it comes again
// only if the broker takes more than the time left plus its second of
// grace (once for a renewal, whose new checkpoint the proxy acks when the
// client acks; twice for a client's nack, which looks like an extension).
// A dead-letter forward is checked as a client's change (see
// [Broker.ForwardToDeadLetter]).
func (b *Broker) expiring(req ports.ChangeInvisibleRequest) error {
	now := b.clock.Now()
	switch {
	case req.Handle.Expired(now):
		return domain.Wrap(domain.ReasonInvalidReceiptHandle, ports.ErrHandleExpiring,
			"receipt handle is expired: the message became visible again and may have been delivered anew; ack or change it within its invisible duration")
	case req.Release && req.Handle.ReviveQueueID != remoting.OrderlyReviveQid && req.Handle.Expired(now.Add(b.releaseMargin())):
		return domain.Wrap(domain.ReasonInvalidReceiptHandle, ports.ErrHandleExpiring,
			"the receipt handle expires before a release could be relied on to reach the broker; the message becomes visible then")
	}
	return nil
}

// releaseMargin is how long a handle must still be valid for a release of
// it to be sent: cluster.requestTimeout.
func (b *Broker) releaseMargin() time.Duration { return b.cfg.RequestTimeout }

// ChangeInvisibleBatch implements [ports.Broker]: one
// CHANGE_MESSAGE_INVISIBLETIME per delivery, run side by side.
func (b *Broker) ChangeInvisibleBatch(ctx context.Context, reqs []ports.ChangeInvisibleRequest) ([]domain.ReceiptHandle, []error) {
	handles := make([]domain.ReceiptHandle, len(reqs))
	errs := make([]error, len(reqs))
	each(len(reqs), func(i int) { handles[i], errs[i] = b.ChangeInvisible(ctx, reqs[i]) })
	return handles, errs
}

// remotingExpression returns how POP_MESSAGE and PULL_MESSAGE carry a
// filter (its type and text, "*" for every message) and the filter to
// check the broker's answer with: a tag filter again, since the broker
// matches tags by their hash codes and lets a colliding tag through, but
// not a SQL92 one. The broker evaluated that on the message's stored
// properties, which include some that rmqproxy does not show (CLUSTER,
// PGROUP, the stored RECONSUME_TIME, ...): evaluated again here, an
// expression naming one would drop messages the broker delivered, and a
// dropped popped message is acked, i.e. lost to the group. The Apache
// proxy checks tags only, too.
func remotingExpression(req filter.Filter) (check filter.Filter, expType, exp string) {
	f := req
	if f == nil {
		f = filter.All
	}
	expr := f.Expression()
	switch {
	case expr.Type == filter.TypeSQL92:
		return filter.All, remoting.ExpressionSQL92, expr.Text
	case expr.Text != "":
		return f, remoting.ExpressionTag, expr.Text
	}
	return f, remoting.ExpressionTag, "*"
}

// pollBudget is how long the broker may hold a long poll and how long the
// call may take in all: the requested poll, cut to leave a reserve before
// ctx's deadline.
func (b *Broker) pollBudget(ctx context.Context, requested time.Duration) (poll, timeout time.Duration) {
	poll, timeout = requested, b.cfg.RequestTimeout+requested
	if dl, ok := ctx.Deadline(); ok {
		remaining := time.Until(dl)
		poll = min(poll, remaining-pollReserve(remaining))
		timeout = remaining
	}
	return max(poll, 0), timeout
}
