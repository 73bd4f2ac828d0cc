package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Header values the Apache proxy sends with every send.
const (
	defaultTopic          = "TBW102"
	defaultTopicQueueNums = 4
)

// maxSendAttempts bounds the brokers one send is tried on.
const maxSendAttempts = 3

// Send implements [ports.Broker]: it stores msgs in queue q with one
// SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) to q's broker; a lone normal
// message may share a SEND_BATCH_MESSAGE with concurrent ones (see
// sendline.go) and then goes to the queue of the request's first. When that broker
// is isolated after a recent failure, or the attempt fails in a way that
// stored nothing, a batch without a message group moves to a queue of
// another broker; a FIFO batch stays on its queue to keep its order.
func (b *Broker) Send(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	if len(msgs) == 0 {
		return nil, domain.Errorf(domain.ReasonMessageCorrupted, "no message to send")
	}
	e, err := b.meta.topic(ctx, q.Topic)
	if err != nil {
		return nil, err
	}
	movable := msgs[0].Group == ""
	tried := map[string]bool{}
	if movable && b.faults.isolated(q.BrokerName, b.clock.Now()) {
		if alt, ok := b.otherQueue(e, q, tried); ok {
			q = alt
		}
	}
	body, code, props, err := encodeSend(msgs)
	if err != nil {
		return nil, err
	}
	shared := b.coalescible(msgs)
	for attempt := 1; ; attempt++ {
		tried[q.BrokerName] = true
		var receipts []domain.SendReceipt
		if attempt == 1 && shared {
			receipts, err = b.sendCoalesced(ctx, e, q, &msgs[0], props)
		} else {
			receipts, err = b.sendTo(ctx, e, q, msgs, body, code, props, b.cfg.RequestTimeout)
		}
		if err == nil {
			return receipts, nil
		}
		b.failed(q.BrokerName, err)
		if isCode(err, remoting.ResponseTopicNotExist) {
			b.meta.invalidateTopic(q.Topic)
		}
		if attempt < maxSendAttempts && unsentDial(err) && ctx.Err() == nil {
			// The broker may have moved (restarted at a new address): the
			// route, made stale by the failure, is read again, and the
			// send goes to the same queue there, FIFO or not.
			if old, _ := e.addr(q.BrokerName); old != "" {
				if fresh, ferr := b.meta.topic(ctx, q.Topic); ferr == nil {
					if a, _ := fresh.addr(q.BrokerName); a != "" && a != old {
						e = fresh
						continue
					}
				}
			}
		}
		if !movable || attempt >= maxSendAttempts || !notStored(err) || ctx.Err() != nil {
			return nil, mapError(err)
		}
		alt, ok := b.otherQueue(e, q, tried)
		if !ok {
			return nil, mapError(err)
		}
		b.log.LogAttrs(ctx, slog.LevelDebug, "send failed before storing; trying another broker",
			slog.String("broker", q.BrokerName), slog.String("next", alt.BrokerName), slog.Any("error", err))
		q = alt
	}
}

// otherQueue picks a writable queue of a broker not tried yet and not
// isolated, preferring q's queue id.
func (b *Broker) otherQueue(e *topicEntry, q domain.QueueRef, tried map[string]bool) (domain.QueueRef, bool) {
	now := b.clock.Now()
	var best *ports.RouteQueue
	for i := range e.route.Queues {
		rq := &e.route.Queues[i]
		if !rq.Permission.Writable() || tried[rq.BrokerName] || rq.BrokerName == q.BrokerName || b.faults.isolated(rq.BrokerName, now) {
			continue
		}
		if best == nil || (best.BrokerName == rq.BrokerName && rq.QueueID == q.QueueID) {
			best = rq
		}
	}
	if best == nil {
		return q, false
	}
	return domain.QueueRef{Topic: q.Topic, BrokerName: best.BrokerName, QueueID: best.QueueID}, true
}

// encodeSend builds the body, request code and header properties of a send.
func encodeSend(msgs []domain.Message) ([]byte, remoting.RequestCode, string, error) {
	if len(msgs) == 1 {
		props, err := formatProperties(&msgs[0])
		if err == nil && len(props) > remoting.MaxPropertiesLen {
			err = errors.New("properties exceed 32767 bytes")
		}
		if err != nil {
			return nil, 0, "", propertiesError(err)
		}
		return msgs[0].Body, remoting.RequestSendMessageV2, props, nil
	}
	if err := checkBatch(msgs); err != nil {
		return nil, 0, "", err
	}
	batch := make([]remoting.BatchMessage, len(msgs))
	for i := range msgs {
		batch[i] = remoting.BatchMessage{Body: msgs[i].Body, Properties: messageProperties(&msgs[i])}
	}
	body, err := remoting.EncodeBatch(batch)
	if err != nil {
		return nil, 0, "", propertiesError(err)
	}
	return body, remoting.RequestSendBatchMessage, "", nil
}

// checkBatch refuses a batch a broker cannot store as sent. A
// SEND_BATCH_MESSAGE carries one system flag for all its messages (the
// broker stores each with the batch's: a body the producer did not
// compress would be marked compressed, or the reverse), its store refuses
// a transactional batch (MESSAGE_ILLEGAL) and never defers a batch to its
// timer (the timer hook sees single messages only), so delay messages
// would be delivered at once. Local mode stores all of these.
func checkBatch(msgs []domain.Message) error {
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.Compressed != msgs[0].Compressed:
			return domain.Errorf(domain.ReasonBadRequest,
				"message %d of the batch has another body encoding than the first; RocketMQ brokers store one encoding per batch: send messages of each encoding in their own request", i)
		case m.Transactional:
			return domain.Errorf(domain.ReasonBadRequest,
				"RocketMQ brokers do not store transactional messages in a batch: send each in its own request")
		case !m.DeliverAt.IsZero():
			return domain.Errorf(domain.ReasonBadRequest,
				"RocketMQ brokers deliver the delay messages of a batch at once: send each delay message in its own request")
		}
	}
	return nil
}

// propertiesError explains properties RocketMQ's format cannot carry: too
// long in all (32767 bytes), or a separator character in a key or value.
func propertiesError(err error) error {
	var de *remoting.DecodeError
	if errors.As(err, &de) && !strings.Contains(de.Reason, "exceed") {
		return domain.Wrap(domain.ReasonBadRequest, err, "a message property cannot be stored by RocketMQ: "+de.Reason)
	}
	return domain.Wrap(domain.ReasonPropertiesTooLarge, err, "the message's properties are longer than RocketMQ's limit of 32767 bytes")
}

// sendTo sends to one queue, waiting at most timeout (and while ctx
// lasts), and returns one receipt per message, or the raw failure (see
// mapError).
func (b *Broker) sendTo(ctx context.Context, e *topicEntry, q domain.QueueRef, msgs []domain.Message, body []byte, code remoting.RequestCode, props string, timeout time.Duration) ([]domain.SendReceipt, error) {
	addr, err := e.addr(q.BrokerName)
	if err != nil {
		return nil, err
	}
	resp, err := b.invokeWithin(ctx, addr, sendRequest(q, msgs, body, code, props, b.clock.Now()), timeout)
	if err != nil {
		return nil, err
	}
	rs, err := sendReceipts(resp, q, msgs)
	if re, ok := err.(*remoting.ResponseError); ok {
		re.Request = code
	}
	return rs, err
}

// sendRequest builds the request that stores msgs in q (now is the born
// time of a message without one).
func sendRequest(q domain.QueueRef, msgs []domain.Message, body []byte, code remoting.RequestCode, props string, now time.Time) *remoting.Command {
	first := &msgs[0]
	born := first.BornAt
	if born.IsZero() {
		born = now
	}
	h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: q.BrokerName}, ProducerGroup: q.Topic, Topic: q.Topic,
		DefaultTopic: defaultTopic, DefaultTopicQueueNums: defaultTopicQueueNums, QueueID: q.QueueID, SysFlag: sysFlagOf(first),
		BornTimestamp: born.UnixMilli(), Properties: props, Batch: len(msgs) > 1}
	req := remoting.NewSendRequestV2(code, &h, body)
	// The binary header, as RocketMQ's own benchmark producers send
	// (rocketmq.serialize.type=ROCKETMQ): the broker decodes either form
	// into the same ext fields and answers in its own (JSON), and the
	// binary one is cheaper to write here and to read there, and smaller
	// (JSON escapes each of the properties' separators in six bytes).
	req.Serialize = remoting.RocketMQ
	return req
}

// sendReceipts reads a broker's answer to sendRequest: one receipt per
// message, or the answer's failure.
func sendReceipts(resp *remoting.Command, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	if err := remoting.Expect(resp); err != nil {
		return nil, err
	}
	var sr remoting.SendMessageResponseHeader
	if err := sr.DecodeFields(resp.Fields); err != nil { // as decodeHeader, without sr escaping through its interface
		return nil, headerError(err)
	}
	out := make([]domain.SendReceipt, len(msgs))
	var ids []string // offset message ids, read for transactional messages only
	for i := range msgs {
		r := domain.SendReceipt{MessageID: msgs[i].ID, QueueID: sr.QueueID, QueueOffset: sr.QueueOffset + int64(i), RecallHandle: sr.RecallHandle}
		if len(msgs) > 1 {
			r.RecallHandle = ""
		}
		if msgs[i].Transactional {
			if ids == nil {
				ids = strings.Split(sr.MsgID, ",")
			}
			var clo int64 = -1
			if i < len(ids) {
				if _, off, err := remoting.ParseOffsetMsgID(ids[i]); err == nil {
					clo = off
				}
			}
			r.TransactionID = transactionID{Broker: q.BrokerName, CommitLogOffset: clo, QueueOffset: r.QueueOffset, MessageID: msgs[i].ID}.String()
		}
		out[i] = r
	}
	return out, nil
}

// transactionID locates a half message, so that any rmqproxy instance can
// end the transaction: the broker holding it, its commit-log offset and
// its offset in the half-message queue (what END_TRANSACTION needs), and
// its message id. Clients treat it as opaque.
type transactionID struct {
	Broker          string
	CommitLogOffset int64
	QueueOffset     int64
	MessageID       string
}

const txIDVersion = "t1"

// String encodes the id as URL-safe base64 of its space-separated fields.
func (t transactionID) String() string {
	raw := strings.Join([]string{txIDVersion, t.Broker, strconv.FormatInt(t.CommitLogOffset, 10),
		strconv.FormatInt(t.QueueOffset, 10), t.MessageID}, " ")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// parseTransactionID decodes an id made by String.
func parseTransactionID(s string) (transactionID, error) {
	bad := domain.Errorf(domain.ReasonInvalidTransactionID,
		"transaction id %q was not issued by rmqproxy in cluster mode; pass the transaction id of the send receipt or of the check-back", truncate(s, 64))
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) > 1024 {
		return transactionID{}, bad
	}
	f := strings.Split(string(raw), " ")
	if len(f) != 5 || f[0] != txIDVersion || f[1] == "" {
		return transactionID{}, bad
	}
	t := transactionID{Broker: f[1], MessageID: f[4]}
	if t.CommitLogOffset, err = strconv.ParseInt(f[2], 10, 64); err != nil || t.CommitLogOffset < 0 {
		return transactionID{}, bad
	}
	if t.QueueOffset, err = strconv.ParseInt(f[3], 10, 64); err != nil || t.QueueOffset < 0 {
		return transactionID{}, bad
	}
	return t, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// EndTransaction implements [ports.Transactions]: END_TRANSACTION to the
// broker the transaction id names, with the producer group = topic that
// the half message was sent with. A transaction this instance ended
// already is refused before it reaches the broker (see
// endedTransactions).
//
// An END_TRANSACTION written and not answered (no answer in time, the
// connection closed after it) is answered OK, as the Apache proxy answers
// the END_TRANSACTION it sends oneway: the broker may have ended the
// transaction, so the end is kept as in doubt and a retry is refused (a
// broker would commit again); if it did not arrive, the broker's
// check-back asks the producer, whose answer is sent. An end that was
// never written fails, and may be retried.
func (b *Broker) EndTransaction(ctx context.Context, req ports.EndTransactionRequest) error {
	t, err := parseTransactionID(req.TransactionID)
	if err != nil {
		return err
	}
	var verdict int32
	switch req.Resolution {
	case ports.ResolutionCommit:
		verdict = remoting.TransactionCommit
	case ports.ResolutionRollback:
		verdict = remoting.TransactionRollback
	default:
		return nil
	}
	addr, err := b.meta.brokerAddr(ctx, t.Broker)
	if err != nil {
		return err
	}
	msgID := req.MessageID
	if msgID == "" {
		msgID = t.MessageID
	}
	key := endedKey(t.Broker, t.MessageID)
	// An end naming a copy a check-back named answers that check-back,
	// whatever source the client gave (the official Go client gives none):
	// after an end in doubt it must still reach the broker.
	fromCheck := req.FromCheck || b.checked.fromCheck(key, t)
	prev, ok := b.ended.begin(key, fromCheck)
	if !ok {
		return endedAlready(t.MessageID, prev)
	}
	// The copy the broker asks about now, should a check-back have named
	// a later one than the id's (see checkedCopies).
	t = b.checked.newest(key, t)
	h := remoting.EndTransactionRequestHeader{RPC: remoting.RPC{BrokerName: t.Broker}, Topic: req.Topic, ProducerGroup: req.Topic,
		TranStateTableOffset: t.QueueOffset, CommitLogOffset: t.CommitLogOffset, CommitOrRollback: verdict,
		FromTransactionCheck: fromCheck, MsgID: msgID, TransactionID: t.MessageID}
	cctx, cancel := bounded(ctx, b.cfg.RequestTimeout)
	resp, err := b.rpc.InvokeWithLate(cctx, addr, newRequest(remoting.RequestEndTransaction, &h, nil), b.endAnsweredLate)
	cancel()
	if moved := b.movedBroker(ctx, t.Broker, addr, b.failedAt(t.Broker, err)); moved != "" { // not sent: no end twice
		addr = moved
		cctx, cancel := bounded(ctx, b.cfg.RequestTimeout)
		resp, err = b.rpc.InvokeWithLate(cctx, addr, newRequest(remoting.RequestEndTransaction, &h, nil), b.endAnsweredLate)
		cancel()
	}
	if err == nil {
		b.answered(addr)
		err = expect(remoting.RequestEndTransaction, resp)
	}
	switch {
	case err == nil:
		b.ended.done(key, prev, req.Resolution, b.clock.Now(), endEnded)
		return nil
	case maybeDelivered(err):
		b.ended.done(key, prev, req.Resolution, b.clock.Now(), endInDoubt)
		b.failed(t.Broker, err)
		b.log.LogAttrs(ctx, slog.LevelWarn, "END_TRANSACTION was sent but not answered: answered OK, as the Apache proxy does; it is not sent again, and if it did not arrive the broker's check-back resolves the transaction",
			slog.String("broker", t.Broker), slog.String("message_id", t.MessageID), slog.String("resolution", req.Resolution.String()),
			slog.Bool("from_check", fromCheck), slog.Any("error", err))
		return nil
	default:
		b.ended.done(key, prev, req.Resolution, b.clock.Now(), endFailed)
		b.failed(t.Broker, err)
		return endTransactionError(err)
	}
}

// endedAlready is the refusal of an end of a transaction this instance
// ended, is ending, or left in doubt (prev).
func endedAlready(msgID string, prev endedTransaction) error {
	switch {
	case prev.inDoubt:
		return domain.Errorf(domain.ReasonInvalidTransactionID,
			"transaction of message %s is being ended already: %s was sent to the broker at %s, which did not answer; it is not sent again (a broker that got it would end the transaction twice): if it did not arrive, the broker's check-back resolves the transaction",
			msgID, prev.resolution, prev.at.UTC().Format(time.RFC3339))
	case prev.resolution == ports.ResolutionUnknown:
		return domain.Errorf(domain.ReasonInvalidTransactionID,
			"transaction of message %s is being ended by another request; its outcome is that request's", msgID)
	}
	return domain.Errorf(domain.ReasonInvalidTransactionID,
		"transaction of message %s was already ended (%s at %s) through this rmqproxy; it cannot be ended again (the broker would store a committed message once more)",
		msgID, prev.resolution, prev.at.UTC().Format(time.RFC3339))
}

// maybeDelivered reports whether a failed request may have reached the
// broker: it was queued for writing and not answered.
func maybeDelivered(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.MaybeDelivered()
}

// endAnsweredLate is the late handler of END_TRANSACTION: the broker's
// SUCCESS to an end left in doubt settles it (see endedTransactions.settle).
func (b *Broker) endAnsweredLate(ctx context.Context, addr string, req, resp *remoting.Command) {
	var h remoting.EndTransactionRequestHeader
	if err := h.DecodeFields(req.Fields); err != nil {
		return
	}
	r := ports.ResolutionRollback
	if h.CommitOrRollback == remoting.TransactionCommit {
		r = ports.ResolutionCommit
	}
	if err := expect(remoting.RequestEndTransaction, resp); err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "the broker refused an END_TRANSACTION after it was left in doubt; the broker's check-back resolves the transaction",
			slog.String("broker_addr", addr), slog.String("message_id", h.TransactionID), slog.String("resolution", r.String()), slog.Any("error", err))
		return
	}
	b.ended.settle(endedKey(h.BrokerName, h.TransactionID), r)
}

// halfMessageRefusals are the remarks of the 5.x broker's
// EndTransactionProcessor when the transaction id does not name a
// pending half message of this producer group (never there, resolved
// already, or another group's). It answers store failures ("OS page cache
// busy", "Create mapped file failed.", timer flow control, ...) with the
// same SYSTEM_ERROR code: those are transient and keep the broker's code.
var halfMessageRefusals = []string{
	"Find prepared transaction message failed",
	"The producer group wrong",
	"The transaction state table offset wrong",
	"The commit log offset wrong",
}

// endTransactionError maps a failed END_TRANSACTION: INVALID_TRANSACTION_ID
// only when the broker refused the id itself.
func endTransactionError(err error) error {
	var re *remoting.ResponseError
	if errors.As(err, &re) && re.Code == remoting.ResponseSystemError && slices.Contains(halfMessageRefusals, re.Remark) {
		return domain.Wrap(domain.ReasonInvalidTransactionID, err, "the transaction cannot be ended: "+re.Remark)
	}
	if errors.As(err, &re) && re.Code == remoting.ResponseIllegalOperation {
		// The broker's rejectCommitOrRollback, answered without a remark:
		// the producer set an orphaned transaction recovery duration and
		// ends the transaction after it.
		return domain.Wrap(domain.ReasonBadRequest, err, "the broker no longer lets the producer end this transaction: more than the orphaned transaction recovery duration given at the send has passed, so only a check-back resolves it now (the broker asks a producer of the topic)")
	}
	return mapError(err)
}

func remarkOf(err error) string {
	var re *remoting.ResponseError
	if errors.As(err, &re) && re.Remark != "" {
		return re.Remark
	}
	return err.Error()
}

// onCheckTransaction serves a broker's CHECK_TRANSACTION_STATE: the half
// message goes to the application's check handler, which relays it to a
// producer of its topic connected to this proxy; the producer answers with
// EndTransaction. The broker sends it oneway and asks again later when
// nobody answers.
func (b *Broker) onCheckTransaction(ctx context.Context, addr string, req *remoting.Command) *remoting.Command {
	var h remoting.CheckTransactionStateRequestHeader
	if err := h.DecodeFields(req.Fields); err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "a broker sent a transaction check this proxy cannot read", slog.String("broker_addr", addr), slog.Any("error", err))
		return nil
	}
	m, err := remoting.DecodeMessage(req.Body)
	if err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "a broker sent a transaction check with a message this proxy cannot read", slog.String("broker_addr", addr), slog.Any("error", err))
		return nil
	}
	broker := h.BrokerName
	if broker == "" {
		broker = b.meta.brokerNameOf(addr)
	}
	handler := b.checkHandler()
	if broker == "" || handler == nil {
		return nil
	}
	topic := m.Topic
	if rt := m.Properties.Value(remoting.PropertyRealTopic); rt != "" && strings.HasPrefix(topic, "RMQ_SYS_") {
		topic = rt
	}
	sm := storedMessage(&m, topic, broker)
	id := m.Properties.Value(remoting.PropertyUniqKey)
	if id == "" {
		id = h.MsgID
	}
	tid := transactionID{Broker: broker, CommitLogOffset: h.CommitLogOffset, QueueOffset: h.TranStateTableOffset, MessageID: id}
	b.checked.record(endedKey(broker, id), tid)
	sm.TransactionID = tid.String()
	checks, _ := strconv.ParseInt(m.Properties.Value(remoting.PropertyTransactionCheckTimes), 10, 32)
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	handler(hctx, ports.TransactionCheck{Message: sm, Checks: int32(checks)})
	return nil
}

// recallHandle is what a broker's recall handle holds (upstream
// RecallMessageHandle.HandleV1: URL-safe base64 of "v1 topic broker
// deliveryTimeMs messageId").
func parseRecallHandle(s string) (topic, broker string, ok bool) {
	raw, err := base64.URLEncoding.DecodeString(s)
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(s); err != nil {
			return "", "", false
		}
	}
	f := strings.Split(string(raw), " ")
	if len(f) < 5 || f[0] != "v1" || f[2] == "" {
		return "", "", false
	}
	return f[1], f[2], true
}

// recallDisabled starts the remark of a broker's NO_PERMISSION answer to a
// RECALL_MESSAGE when its recallMessageEnable is false (RocketMQ 5.5.0
// RecallMessageProcessor).
const recallDisabled = "recall failed, operation is forbidden"

// Recall implements [ports.Recaller]: RECALL_MESSAGE to the broker the
// recall handle names.
func (b *Broker) Recall(ctx context.Context, topic, handle string) (string, error) {
	handleTopic, broker, ok := parseRecallHandle(handle)
	if !ok {
		return "", domain.Errorf(domain.ReasonBadRequest, "recall handle is invalid: pass the recall handle of a delay message's send receipt")
	}
	if handleTopic != topic {
		// The broker answers ILLEGAL_OPERATION "topic not match", which
		// would reach the client as INTERNAL_SERVER_ERROR; local mode
		// answers BAD_REQUEST.
		return "", domain.Errorf(domain.ReasonBadRequest, "the recall handle belongs to topic %q, not %q", handleTopic, topic)
	}
	addr, err := b.meta.brokerAddr(ctx, broker)
	if err != nil {
		return "", err
	}
	recall := func(addr string) (*remoting.Command, error) {
		return b.call(ctx, addr, remoting.RequestRecallMessage,
			&remoting.RecallMessageRequestHeader{RPC: remoting.RPC{BrokerName: broker}, ProducerGroup: topic, Topic: topic, RecallHandle: handle}, nil)
	}
	resp, err := recall(addr)
	if moved := b.movedBroker(ctx, broker, addr, b.failedAt(broker, err)); moved != "" {
		// Restarted elsewhere (see [Broker.movedBroker]).
		resp, err = recall(moved)
	}
	if err != nil {
		b.failed(broker, err)
		switch {
		case isCode(err, remoting.ResponseIllegalOperation) && strings.Contains(remarkOf(err), "timestamp invalid"):
			return "", domain.Wrap(domain.ReasonNotFound, err, "the message cannot be recalled: its delivery time has passed")
		case isCode(err, remoting.ResponseNoPermission) && strings.HasPrefix(remarkOf(err), recallDisabled):
			// Not a permission of the topic or the group (mapError would
			// make it FORBIDDEN): the broker's own setting. Any other
			// NO_PERMISSION (its ACL refusing rmqproxy's broker user) is
			// mapError's, which names its cause.
			return "", domain.Wrap(domain.ReasonBrokerError, err, remarkOf(err)+" (the broker's recallMessageEnable is false)")
		}
		return "", mapError(err)
	}
	var rh remoting.RecallMessageResponseHeader
	if err := decodeHeader(resp, &rh); err != nil {
		return "", err
	}
	return rh.MsgID, nil
}
