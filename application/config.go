package application

import (
	"errors"
	"fmt"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

// Config holds the behaviour settings of the messaging use cases. Defaults
// are the Apache RocketMQ proxy's (ProxyConfig), so that official clients
// observe the same limits and settings.
type Config struct {
	Limits   LimitsConfig   `yaml:"limits"`
	Producer ProducerConfig `yaml:"producer"`
	Consumer ConsumerConfig `yaml:"consumer"`
	Clients  ClientsConfig  `yaml:"clients"`
	// CheckSendTimeout bounds one hand-over of a transaction check-back to
	// a producer's channel whose queue is full (0: checkSendTimeout). Not
	// a setting: tests make it long, so that a check-back that waited for
	// a stuck producer shows without measuring time.
	CheckSendTimeout time.Duration `yaml:"-"`
}

// checkSendTimeout returns [Config.CheckSendTimeout] or its default.
func (c Config) checkSendTimeout() time.Duration {
	if c.CheckSendTimeout > 0 {
		return c.CheckSendTimeout
	}
	return checkSendTimeout
}

// LimitsConfig bounds what a producer may send.
type LimitsConfig struct {
	MaxBodySize            int64         `yaml:"maxBodySize" unit:"bytes" help:"largest message body accepted (as sent, i.e. compressed if the client compressed it); also pushed to producers as publishing.max_body_size; 0 disables the check (producers are then told grpc.maxRecvMessageSize, the largest request taken)"`
	RejectEmptyBody        bool          `yaml:"rejectEmptyBody" help:"reject messages without a body (MESSAGE_BODY_EMPTY)"`
	MaxUserPropertyCount   int           `yaml:"maxUserPropertyCount" help:"most user properties one message may carry"`
	MaxPropertiesSize      int64         `yaml:"maxPropertiesSize" unit:"bytes" help:"most bytes of user property keys and values, tag and keys of one message together"`
	MaxMessageGroupSize    int           `yaml:"maxMessageGroupSize" help:"message groups must be shorter than this many bytes"`
	MaxDelay               time.Duration `yaml:"maxDelay" help:"how far in the future a delay message's delivery time may lie; 0: no limit (in cluster mode the brokers' timerMaxDelaySec, 3 days by default, still bounds it: beyond, the send is refused ILLEGAL_DELIVERY_TIME)"`
	MaxTransactionRecovery time.Duration `yaml:"maxTransactionRecovery" help:"longest orphaned-transaction recovery duration a producer may ask for; 0: no limit"`
	TopicMessageTypeCheck  bool          `yaml:"topicMessageTypeCheck" help:"reject messages whose type does not match the topic's type, and ask clients to check it too"`
	// MaxFilterExpressionLength protects the proxy: each receive compiles
	// its filter, and a SQL92 filter costs its size per message examined.
	MaxFilterExpressionLength int64 `yaml:"maxFilterExpressionLength" unit:"bytes" help:"longest tag or SQL92 filter expression a consumer may subscribe or receive with (ILLEGAL_FILTER_EXPRESSION beyond); 0: no bound but the gRPC request size, as the Apache proxy"`
}

// ProducerConfig is the retry policy pushed to producers.
type ProducerConfig struct {
	MaxAttempts       int32         `yaml:"maxAttempts" help:"send attempts a producer makes, pushed in the settings handshake"`
	BackoffInitial    time.Duration `yaml:"backoffInitial" help:"first wait between send attempts after throttling"`
	BackoffMax        time.Duration `yaml:"backoffMax" help:"longest wait between send attempts"`
	BackoffMultiplier float64       `yaml:"backoffMultiplier" help:"growth factor of the wait between send attempts"`
}

// ConsumerConfig shapes receiving.
type ConsumerConfig struct {
	MinInvisibleTime     time.Duration `yaml:"minInvisibleTime" help:"shortest invisible duration a ReceiveMessage may ask for"`
	MaxInvisibleTime     time.Duration `yaml:"maxInvisibleTime" help:"longest invisible duration a ReceiveMessage or ChangeInvisibleDuration may ask for (0: no limit but a hundred years); the retry delays announced to consumers are cut to it"`
	MinLongPolling       time.Duration `yaml:"minLongPolling" help:"shortest long-polling time; a receive whose deadline leaves less is rejected (ILLEGAL_POLLING_TIME)"`
	MaxLongPolling       time.Duration `yaml:"maxLongPolling" help:"longest long-polling time; also pushed to consumers"`
	ReceiveBatchSize     int32         `yaml:"receiveBatchSize" help:"batch size pushed to push consumers"`
	MaxBatchSize         int32         `yaml:"maxBatchSize" help:"larger receive batch sizes are reduced to this"`
	AutoRenew            bool          `yaml:"autoRenew" help:"renew the invisible time of messages held by push consumers until they are acked"`
	DefaultInvisibleTime time.Duration `yaml:"defaultInvisibleTime" help:"invisible time given to messages received by auto-renewing (push) consumers"`
	RenewPeriod          time.Duration `yaml:"renewPeriod" help:"how often auto-renewal looks for messages about to become visible"`
	RenewAhead           time.Duration `yaml:"renewAhead" help:"renew a message when it would become visible within this time; must exceed renewPeriod and stay below defaultInvisibleTime"`
	RenewMaxTime         time.Duration `yaml:"renewMaxTime" help:"stop renewing after this time since receipt and let the message be retried"`
	InvisibleTimeOnClear time.Duration `yaml:"invisibleTimeOnClear" help:"invisible time left to messages of a client that went away, so they are redelivered quickly"`
}

// ClientsConfig governs client sessions.
type ClientsConfig struct {
	ExpiryTimeout time.Duration `yaml:"expiryTimeout" help:"a client that sent no heartbeat or telemetry for this long is forgotten and its held messages released"`
	MaxClients    int           `yaml:"maxClients" help:"clients (client ids) known at once; a new one beyond gets TOO_MANY_REQUESTS until others expire"`
	// MaxClientsPerUser keeps one tenant from filling MaxClients.
	MaxClientsPerUser int `yaml:"maxClientsPerUser" help:"with auth.enabled, clients (client ids) one user may have known at once, so that a client inventing ids cannot take the registry other users need (maxClients); a new one beyond gets TOO_MANY_REQUESTS until others of the user expire or terminate; 0: no bound but maxClients"`
	// MaxClientsPerAddress keeps one client address without
	// authentication from filling MaxClients.
	MaxClientsPerAddress int `yaml:"maxClientsPerAddress" help:"clients (client ids) without authentication registered from one client IP address (an IPv6 /64) that may be known at once, so that a client inventing ids cannot take the registry every other client needs (maxClients); a new one beyond gets TOO_MANY_REQUESTS until others of the address expire or terminate; raise it when many clients share an address behind NAT (as grpc.maxConnectionsPerAddress); authenticated clients are bounded by maxClientsPerUser instead; 0: no bound but maxClients"`
	// MaxSettingsBytes bounds the memory one tenant's clients' settings
	// take: a settings command may be a whole gRPC request.
	MaxSettingsBytes int64 `yaml:"maxSettingsBytes" unit:"bytes" help:"bytes of settings (topics, consumer groups, subscriptions and their filters) the known clients of one user (with auth.enabled) or, without authentication, registered from one client IP address (an IPv6 /64) may make the proxy keep, so that huge settings sent under many client ids cannot exhaust its memory (they are kept until the client expires); settings beyond it get TOO_MANY_REQUESTS (the Telemetry stream ends) until clients of that user or address shrink their settings, terminate or expire; 0: no bound"`
	// CommandTimeout is the Apache proxy's grpcProxyRelayRequestTimeoutInSeconds.
	CommandTimeout time.Duration `yaml:"commandTimeout" help:"how long rmqproxy client stack and client verify (and a broker's consumer running info request) wait for the client's answer on its Telemetry stream (at most 25s)"`
}

// maxCommandTimeout bounds clients.commandTimeout below the admin CLI's
// own 30 s wait, so that a client that does not answer is reported as such.
const maxCommandTimeout = 25 * time.Second

// DefaultConfig returns the Apache proxy's defaults.
func DefaultConfig() Config {
	l := domain.DefaultLimits()
	return Config{
		Limits: LimitsConfig{
			MaxBodySize:            l.MaxBodySize,
			RejectEmptyBody:        l.RejectEmptyBody,
			MaxUserPropertyCount:   l.MaxUserPropertyCount,
			MaxPropertiesSize:      int64(l.MaxPropertiesSize),
			MaxMessageGroupSize:    l.MaxMessageGroupSize,
			MaxDelay:               l.MaxDelay,
			MaxTransactionRecovery: l.MaxTransactionRecovery,
			TopicMessageTypeCheck:  true,

			MaxFilterExpressionLength: filter.DefaultMaxExpressionLength,
		},
		Producer: ProducerConfig{
			MaxAttempts:       3,
			BackoffInitial:    10 * time.Millisecond,
			BackoffMax:        time.Second,
			BackoffMultiplier: 2,
		},
		Consumer: ConsumerConfig{
			MinInvisibleTime:     domain.DefaultMinInvisibleTime,
			MaxInvisibleTime:     domain.DefaultMaxInvisibleTime,
			MinLongPolling:       5 * time.Second,
			MaxLongPolling:       20 * time.Second,
			ReceiveBatchSize:     32,
			MaxBatchSize:         32,
			AutoRenew:            true,
			DefaultInvisibleTime: 60 * time.Second,
			RenewPeriod:          5 * time.Second,
			RenewAhead:           10 * time.Second,
			RenewMaxTime:         3 * time.Hour,
			InvisibleTimeOnClear: time.Second,
		},
		Clients: ClientsConfig{ExpiryTimeout: 120 * time.Second, MaxClients: 100_000, MaxClientsPerUser: 5_000, MaxClientsPerAddress: 5_000, MaxSettingsBytes: 64 << 20,
			CommandTimeout: 5 * time.Second},
	}
}

// Validate reports settings that cannot work together.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Limits.MaxBodySize < 0 {
		bad("limits.maxBodySize must not be negative (0: no limit), not %d", c.Limits.MaxBodySize)
	}
	for _, d := range []struct {
		key   string
		value time.Duration
	}{{"maxDelay", c.Limits.MaxDelay}, {"maxTransactionRecovery", c.Limits.MaxTransactionRecovery}} {
		if d.value < 0 {
			bad("limits.%s must not be negative (0: no limit), not %v", d.key, d.value)
		}
	}
	for _, n := range []struct {
		key   string
		value int64
	}{
		{"maxUserPropertyCount", int64(c.Limits.MaxUserPropertyCount)},
		{"maxPropertiesSize", c.Limits.MaxPropertiesSize},
		{"maxMessageGroupSize", int64(c.Limits.MaxMessageGroupSize)},
		{"maxFilterExpressionLength", c.Limits.MaxFilterExpressionLength},
	} {
		if n.value < 0 {
			bad("limits.%s must not be negative (0: no limit), not %d", n.key, n.value)
		}
	}
	p := c.Producer
	if p.MaxAttempts < 1 {
		bad("producer.maxAttempts must be at least 1, not %d", p.MaxAttempts)
	}
	if p.BackoffInitial <= 0 {
		bad("producer.backoffInitial must be positive, not %v", p.BackoffInitial)
	} else if p.BackoffMax < p.BackoffInitial {
		bad("%s", notShorter("producer.backoffMax", p.BackoffMax, "producer.backoffInitial", p.BackoffInitial))
	}
	if p.BackoffMultiplier < 1 {
		bad("producer.backoffMultiplier must be at least 1 (1: the same wait before every attempt), not %v", p.BackoffMultiplier)
	}
	cc := c.Consumer
	if cc.MinInvisibleTime < 0 {
		bad("consumer.minInvisibleTime must not be negative, not %v", cc.MinInvisibleTime)
	} else if cc.MaxInvisibleTime < cc.MinInvisibleTime {
		bad("%s", notShorter("consumer.maxInvisibleTime", cc.MaxInvisibleTime, "consumer.minInvisibleTime", cc.MinInvisibleTime))
	}
	if cc.MinLongPolling <= 0 {
		bad("consumer.minLongPolling must be positive, not %v", cc.MinLongPolling)
	} else if cc.MaxLongPolling < cc.MinLongPolling {
		bad("%s", notShorter("consumer.maxLongPolling", cc.MaxLongPolling, "consumer.minLongPolling", cc.MinLongPolling))
	}
	if cc.ReceiveBatchSize < 1 {
		bad("consumer.receiveBatchSize must be at least 1, not %d", cc.ReceiveBatchSize)
	}
	if cc.MaxBatchSize < 1 {
		bad("consumer.maxBatchSize must be at least 1, not %d", cc.MaxBatchSize)
	}
	if cc.AutoRenew {
		if cc.RenewPeriod <= 0 {
			bad("consumer.renewPeriod must be positive with consumer.autoRenew on, not %v", cc.RenewPeriod)
		}
		if cc.RenewMaxTime <= 0 {
			bad("consumer.renewMaxTime must be positive with consumer.autoRenew on, not %v", cc.RenewMaxTime)
		}
		if cc.DefaultInvisibleTime <= cc.RenewAhead {
			bad("consumer.defaultInvisibleTime (%v) must exceed consumer.renewAhead (%v) with consumer.autoRenew on, or messages turn visible before they are renewed: "+
				"set consumer.defaultInvisibleTime above %v, or consumer.renewAhead below %v",
				cc.DefaultInvisibleTime, cc.RenewAhead, cc.RenewAhead, cc.DefaultInvisibleTime)
		}
		// A message due within renewAhead is renewed by the scan every
		// renewPeriod: one due just after a scan must still be due, not
		// visible, at the next.
		if cc.RenewPeriod > 0 && cc.RenewAhead <= cc.RenewPeriod {
			bad("consumer.renewAhead (%v) must exceed consumer.renewPeriod (%v) with consumer.autoRenew on, or messages turn visible between two renewals and are delivered again: "+
				"set consumer.renewAhead above %v, or consumer.renewPeriod below %v",
				cc.RenewAhead, cc.RenewPeriod, cc.RenewPeriod, cc.RenewAhead)
		}
	}
	if cc.InvisibleTimeOnClear < 0 {
		bad("consumer.invisibleTimeOnClear must not be negative, not %v", cc.InvisibleTimeOnClear)
	}
	if c.Clients.ExpiryTimeout < 10*time.Second {
		bad("clients.expiryTimeout must be at least 10s (clients heartbeat every 10s), not %v", c.Clients.ExpiryTimeout)
	}
	if c.Clients.MaxClients < 1 {
		bad("clients.maxClients must be at least 1, not %d", c.Clients.MaxClients)
	}
	if c.Clients.MaxClientsPerUser < 0 {
		bad("clients.maxClientsPerUser must not be negative (0: no bound but clients.maxClients), not %d", c.Clients.MaxClientsPerUser)
	}
	if c.Clients.MaxSettingsBytes < 0 {
		bad("clients.maxSettingsBytes must not be negative (0: no bound), not %d", c.Clients.MaxSettingsBytes)
	}
	if c.Clients.MaxClientsPerAddress < 0 {
		bad("clients.maxClientsPerAddress must not be negative (0: no bound but clients.maxClients), not %d", c.Clients.MaxClientsPerAddress)
	}
	if c.Clients.CommandTimeout <= 0 || c.Clients.CommandTimeout > maxCommandTimeout {
		bad("clients.commandTimeout must be more than 0 and at most %v (the admin CLI waits 30s for an answer), such as 5s, not %v", maxCommandTimeout, c.Clients.CommandTimeout)
	}
	return errors.Join(errs...)
}

// notShorter is the error of a maximum set below its minimum: both keys
// with their values, and the two ways out.
func notShorter(maxKey string, maxValue time.Duration, minKey string, minValue time.Duration) string {
	return fmt.Sprintf("%s (%v) must not be shorter than %s (%v): set %s to %v or more, or %s to %v or less",
		maxKey, maxValue, minKey, minValue, maxKey, minValue, minKey, maxValue)
}

func (c Config) limits() domain.Limits {
	return domain.Limits{
		MaxBodySize:            c.Limits.MaxBodySize,
		RejectEmptyBody:        c.Limits.RejectEmptyBody,
		MaxUserPropertyCount:   c.Limits.MaxUserPropertyCount,
		MaxPropertiesSize:      int(c.Limits.MaxPropertiesSize),
		MaxMessageGroupSize:    c.Limits.MaxMessageGroupSize,
		MaxDelay:               c.Limits.MaxDelay,
		MaxTransactionRecovery: c.Limits.MaxTransactionRecovery,
	}
}

// compileFilter compiles a consumer's filter expression within the
// configured length bound.
func (c Config) compileFilter(e filter.Expression) (filter.Filter, error) {
	if err := c.checkFilterLength(e); err != nil {
		return nil, err
	}
	return filter.Compile(e)
}

func (c Config) checkFilterLength(e filter.Expression) error {
	if limit := c.Limits.MaxFilterExpressionLength; limit > 0 && int64(len(e.Text)) > limit {
		return domain.Errorf(domain.ReasonIllegalFilterExpression,
			"filter expression is %d bytes, longer than the limit of %d bytes (messaging.limits.maxFilterExpressionLength)", len(e.Text), limit)
	}
	return nil
}
