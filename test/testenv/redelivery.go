package testenv

import (
	"time"

	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

// Tests that show messages were acked watch for them to come back: a
// message whose ack never reached the broker is delivered again once its
// invisible time has run out and the broker has revived it. In the cluster
// pass that is the only proof of an ack there is, since GroupStats then
// reports the broker's consumer offset, which a RocketMQ 5 broker advances
// when it pops (acks are kept in checkpoints), and leaves the in-flight
// count unknown.

// ReviveDelay is how long after a message's invisible time ran out the
// broker of the running pass may take to deliver it again: the embedded
// broker revives on time; a RocketMQ broker once its revive service has
// read the checkpoint (a few seconds).
func ReviveDelay() time.Duration {
	if Target == TargetCluster {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// PushInvisible is the invisible time rmqproxy gives the messages push
// consumers receive (auto-renewed until acked) under [ShortPushInvisible].
const PushInvisible = 5 * time.Second

// ShortPushInvisible makes rmqproxy give push consumers' messages
// PushInvisible (the default is 60 s) and renew them 2 s before it runs
// out, so that one whose ack did not reach the broker comes back soon. A
// message held longer than PushInvisible less 2 s is renewed for a minute
// (the Apache proxy's first renewal step).
func ShortPushInvisible(cfg *app.Root) {
	cfg.Messaging.Consumer.DefaultInvisibleTime = PushInvisible
	cfg.Messaging.Consumer.RenewAhead = 2 * time.Second
	cfg.Messaging.Consumer.RenewPeriod = time.Second
}
