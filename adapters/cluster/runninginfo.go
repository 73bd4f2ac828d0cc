package cluster

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// runningInfoTimeout bounds the answer to one GET_CONSUMER_RUNNING_INFO
// (the broker waits for it on behalf of an admin tool).
const runningInfoTimeout = 10 * time.Second

// SetConsumerRunningInfoHandler implements [ports.ConsumerRelay].
func (b *Broker) SetConsumerRunningInfoHandler(h ports.ConsumerRunningInfoHandler) {
	b.runningInfo.Store(&h)
}

// onConsumerRunningInfo serves a broker's GET_CONSUMER_RUNNING_INFO (what
// mqadmin consumerStatus asks through the broker). The brokers know this
// proxy as one client registering every group of its clients, so the
// answer describes the group's clients connected to this proxy: their
// subscriptions, versions and start, and with jstackEnable their thread
// stacks, asked for over their Telemetry streams. The Apache proxy in
// cluster mode answers REQUEST_CODE_NOT_SUPPORTED (docs/compatibility.md).
func (b *Broker) onConsumerRunningInfo(ctx context.Context, addr string, req *remoting.Command) *remoting.Command {
	var h remoting.GetConsumerRunningInfoRequestHeader
	if fail := b.clientRequest(req, &h, &h.ClientID); fail != nil {
		return fail
	}
	handler := b.runningInfo.Load()
	if handler == nil {
		return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "this proxy does not describe its consumers")
	}
	ctx, cancel := context.WithTimeout(ctx, runningInfoTimeout)
	defer cancel()
	info, err := (*handler)(ctx, h.ConsumerGroup, h.JstackEnable)
	if err != nil {
		return remoting.NewResponse(req, remoting.ResponseSystemError, domain.MessageOf(err))
	}
	body := remoting.ConsumerRunningInfo{
		Properties: map[string]string{
			remoting.RunningInfoConsumeType:    consumeType(info.Push),
			remoting.RunningInfoConsumeOrderly: "false",
			remoting.RunningInfoClientVersion:  strings.Join(info.Versions, ","),
			remoting.RunningInfoStartTimestamp: strconv.FormatInt(info.Since.UnixMilli(), 10),
			remoting.RunningInfoNameServerAddr: strings.Join(b.cfg.NameServers, ";"),
			"PROXY_CLIENTS":                    strings.Join(info.Clients, ","),
		},
		JStack: info.Stacks,
	}
	now := b.clock.Now()
	for _, s := range info.Subscriptions {
		body.SubscriptionSet = append(body.SubscriptionSet, subscriptionData(s, now))
	}
	resp, ok := jsonAnswer(req, body)
	if ok {
		b.log.LogAttrs(ctx, slog.LevelInfo, "consumer running info answered", slog.String("broker_addr", addr),
			slog.String("consumer_group", h.ConsumerGroup), slog.Int("clients", len(info.Clients)), slog.Bool("jstack", h.JstackEnable))
	}
	return resp
}

// consumeType is the consume type a group's running info reports:
// CONSUME_PASSIVELY (push) when one of its clients here is a push consumer,
// as its users see it (the gRPC push consumer pops underneath), so that
// mqadmin queryMsgById -g -d, which asks only a push-type client to consume
// a message, reaches it (ConsumeDirectly); CONSUME_POP otherwise.
func consumeType(push bool) string {
	if push {
		return remoting.ConsumePassively
	}
	return remoting.ConsumePop
}

var _ ports.ConsumerRelay = (*Broker)(nil)
