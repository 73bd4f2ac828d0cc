package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// consumeDirectlyTimeout bounds the answer to one CONSUME_MESSAGE_DIRECTLY:
// the broker waits 10 s for it (Broker2Client.callClient) on behalf of an
// admin tool, so this proxy answers, at the latest, a little before.
const consumeDirectlyTimeout = 8 * time.Second

// SetConsumeDirectlyHandler implements [ports.ConsumerRelay].
func (b *Broker) SetConsumeDirectlyHandler(h ports.ConsumeDirectlyHandler) {
	b.consumeDirectly.Store(&h)
}

// onConsumeDirectly serves a broker's CONSUME_MESSAGE_DIRECTLY (what
// mqadmin queryMsgById -g GROUP -d CLIENT sends through the broker, which
// adds the message it reads by the offset message id as the body). The
// brokers know this proxy as the one client of its clients' groups, so the
// request is relayed to one of the group's consumers connected here that
// subscribes to the message's topic, as a VerifyMessageCommand on its
// Telemetry stream (see application.ClientOps.ConsumeDirectly). Its
// answer becomes the ConsumeMessageDirectlyResult the Apache proxy builds
// for a gRPC client (ClientActivity): OK → CR_SUCCESS,
// FAILED_TO_CONSUME_MESSAGE → CR_LATER, MESSAGE_CORRUPTED → CR_RETURN_NULL.
// Any other answer, no such consumer, or none answering within 8 s is an
// error answer whose remark says which; a timeout is CONSUME_MSG_TIMEOUT,
// as the broker answers when a client does not answer it. The Apache
// proxy in cluster mode answers REQUEST_CODE_NOT_SUPPORTED
// (docs/compatibility.md).
func (b *Broker) onConsumeDirectly(ctx context.Context, addr string, req *remoting.Command) *remoting.Command {
	start := b.clock.Now()
	var h remoting.ConsumeMessageDirectlyRequestHeader
	if fail := b.clientRequest(req, &h, &h.ClientID); fail != nil {
		return fail
	}
	handler := b.consumeDirectly.Load()
	if handler == nil {
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "this proxy does not relay consume message directly requests")
	}
	if len(req.Body) == 0 {
		return remoting.NewResponse(req, remoting.ResponseSystemError,
			fmt.Sprintf("the broker sent no message for msgId %q: it must be an offset message id of a message on broker %s", h.MsgID, h.BrokerName))
	}
	m, err := remoting.DecodeMessage(req.Body)
	if err != nil {
		return remoting.NewResponse(req, remoting.ResponseSystemError, "cannot read the message the broker sent: "+err.Error())
	}
	topic := m.Topic
	if rt := m.Properties.Value(remoting.PropertyRetryTopic); rt != "" && strings.HasPrefix(topic, remoting.RetryGroupTopicPrefix) {
		topic = rt // a retried message: the topic it was sent to
	}
	if t, ok := remoting.PopRetryTopicOf(topic, h.ConsumerGroup); ok {
		// A message the broker revived into the group's pop retry topic
		// (%RETRY%G+T or %RETRY%G_T; revive sets no RETRY_TOPIC): the
		// group's consumers subscribe to T.
		topic = t
	}
	msg := storedMessage(&m, topic, h.BrokerName)
	msg.DeliveryAttempt = 1

	ctx, cancel := context.WithTimeoutCause(ctx, consumeDirectlyTimeout, domain.Errorf(domain.ReasonTimeout,
		"no consumer of group %s answered within %v (the broker waits 10 s for this proxy's answer); the group's clients may be busy or stalled",
		h.ConsumerGroup, consumeDirectlyTimeout))
	defer cancel()
	answer, err := (*handler)(ctx, h.ConsumerGroup, msg)
	log := func(result string) {
		b.log.LogAttrs(ctx, slog.LevelInfo, "consume message directly answered", slog.String("broker_addr", addr),
			slog.String("consumer_group", h.ConsumerGroup), slog.String("msg_id", h.MsgID), slog.String("client_id", answer.ClientID),
			slog.String("client_code", answer.Code), slog.String("result", result))
	}
	if err != nil {
		log(domain.MessageOf(err))
		code := remoting.ResponseSystemError
		if domain.ReasonOf(err) == domain.ReasonTimeout {
			code = remoting.ResponseConsumeMsgTimeout
		}
		return remoting.NewResponse(req, code, domain.MessageOf(err))
	}
	body := remoting.ConsumeMessageDirectlyResult{AutoCommit: true, Remark: "from gRPC client " + answer.ClientID}
	switch answer.Code {
	case "OK":
		body.ConsumeResult = remoting.CMResultSuccess
	case "FAILED_TO_CONSUME_MESSAGE":
		body.ConsumeResult = remoting.CMResultLater
	case "MESSAGE_CORRUPTED":
		body.ConsumeResult = remoting.CMResultReturnNull
	case "NOT_IMPLEMENTED":
		log("not supported")
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, fmt.Sprintf(
			"%s of group %s connected to this proxy answered NOT_IMPLEMENTED%s: only the official Java push consumer consumes a message on request (a VerifyMessageCommand)",
			consumersAsked(answer), h.ConsumerGroup, quoted(answer.Message)))
	default:
		log("client error")
		return remoting.NewResponse(req, remoting.ResponseSystemError, fmt.Sprintf("client %s of group %s answered %s%s",
			answer.ClientID, h.ConsumerGroup, answer.Code, quoted(answer.Message)))
	}
	body.SpentTimeMills = b.clock.Now().Sub(start).Milliseconds()
	resp, ok := jsonAnswer(req, body)
	if ok {
		log(body.ConsumeResult)
	}
	return resp
}

// consumersAsked names who answered NOT_IMPLEMENTED: the client, or every
// one of the consumers asked.
func consumersAsked(a ports.ConsumeDirectlyAnswer) string {
	if a.Asked <= 1 {
		return "client " + a.ClientID
	}
	return fmt.Sprintf("all %d consumers (the last: %s)", a.Asked, a.ClientID)
}

// quoted is a client's status message, quoted after a space, or nothing.
func quoted(msg string) string {
	if msg == "" {
		return ""
	}
	return " " + strconv.Quote(msg)
}
