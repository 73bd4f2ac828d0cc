package admin

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Duration is a time.Duration that JSON carries as a string such as "10s"
// or "1h30m".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string, without the
// trailing zero units (1h30m rather than 1h30m0s).
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(formatDuration(time.Duration(d)))
}

// UnmarshalJSON reads a string such as "10s"; a number is an error, since
// its unit would be a guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"10s\" or \"1h30m\", not %s", truncate(string(b)))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a form such as \"10s\", \"1h30m\" or \"250ms\"", truncate(s))
	}
	*d = Duration(v)
	return nil
}

func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Topic is a topic as the API shows it.
type Topic struct {
	Name string `json:"name"`
	// Type is NORMAL, FIFO, DELAY, TRANSACTION or MIXED.
	Type       string `json:"type"`
	QueueCount int32  `json:"queueCount"`
	// Permission is READ_WRITE, READ, WRITE or NONE.
	Permission  string    `json:"permission"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt,omitzero"`
	UpdatedAt   time.Time `json:"updatedAt,omitzero"`
}

// TopicList is the answer of GET /v1/topics.
type TopicList struct {
	Topics []Topic `json:"topics"`
}

// CreateTopicRequest is the body of POST /v1/topics. Omitted fields take
// the defaults: type NORMAL, 8 queues, no description.
type CreateTopicRequest struct {
	Name        string  `json:"name"`
	Type        string  `json:"type,omitempty"`
	QueueCount  int32   `json:"queueCount,omitempty"`
	Description *string `json:"description,omitempty"`
}

// UpdateTopicRequest is the body of PUT /v1/topics/{name}; omitted fields
// keep their value. The queue count can only grow.
type UpdateTopicRequest struct {
	Type        string  `json:"type,omitempty"`
	QueueCount  int32   `json:"queueCount,omitempty"`
	Description *string `json:"description,omitempty"`
}

// ExponentialRetry waits Initial × Multiplier^(attempt-1), capped at Max.
type ExponentialRetry struct {
	Initial    Duration `json:"initial"`
	Max        Duration `json:"max"`
	Multiplier float64  `json:"multiplier"`
}

// RetryPolicy holds exactly one of its two strategies:
// {"exponential":{"initial":"1s","max":"2h","multiplier":2}} or
// {"customized":["1s","5s","10s"]}.
type RetryPolicy struct {
	Exponential *ExponentialRetry `json:"exponential,omitempty"`
	Customized  []Duration        `json:"customized,omitempty"`
}

// Group is a consumer group as the API shows it.
type Group struct {
	Name                string      `json:"name"`
	MaxDeliveryAttempts int32       `json:"maxDeliveryAttempts"`
	RetryPolicy         RetryPolicy `json:"retryPolicy"`
	Orderly             bool        `json:"orderly"`
	Description         string      `json:"description,omitempty"`
	CreatedAt           time.Time   `json:"createdAt,omitzero"`
	UpdatedAt           time.Time   `json:"updatedAt,omitzero"`
}

// GroupList is the answer of GET /v1/groups.
type GroupList struct {
	Groups []Group `json:"groups"`
}

// CreateGroupRequest is the body of POST /v1/groups. Omitted fields take
// RocketMQ's defaults: 17 delivery attempts, the customized delays 1s 5s 10s
// 30s 1m ... 2h, not orderly.
type CreateGroupRequest struct {
	Name                string       `json:"name"`
	MaxDeliveryAttempts int32        `json:"maxDeliveryAttempts,omitempty"`
	RetryPolicy         *RetryPolicy `json:"retryPolicy,omitempty"`
	Orderly             *bool        `json:"orderly,omitempty"`
	Description         *string      `json:"description,omitempty"`
}

// UpdateGroupRequest is the body of PUT /v1/groups/{name}; omitted fields
// keep their value. A retry policy replaces the whole current policy.
type UpdateGroupRequest struct {
	MaxDeliveryAttempts int32        `json:"maxDeliveryAttempts,omitempty"`
	RetryPolicy         *RetryPolicy `json:"retryPolicy,omitempty"`
	Orderly             *bool        `json:"orderly,omitempty"`
	Description         *string      `json:"description,omitempty"`
}

// QueueStats is a group's progress on one queue.
type QueueStats struct {
	Topic string `json:"topic"`
	// Broker (cluster mode) names the broker holding the queue.
	Broker     string `json:"broker,omitempty"`
	QueueID    int32  `json:"queueId"`
	MaxOffset  int64  `json:"maxOffset"`
	AckOffset  int64  `json:"ackOffset"`
	InFlight   int64  `json:"inFlight"`
	Consumable int64  `json:"consumable"`
	// InFlightUnknown (cluster mode): the brokers do not report what is
	// in flight; inFlight stays 0 for clients that read it as a number.
	InFlightUnknown bool `json:"inFlightUnknown,omitempty"`
	// InFlightInConsumable (cluster mode, an orderly group): consumable
	// counts the messages in flight too, and ackOffset is the offset up to
	// which messages were acked (see ports.QueueStats).
	InFlightInConsumable bool `json:"inFlightInConsumable,omitempty"`
	// Backlog is inFlight + consumable, the table's BACKLOG; with
	// inFlightUnknown it is a lower bound (the table's ">=N"), unless
	// inFlightInConsumable, which makes it exact.
	Backlog int64 `json:"backlog"`
	// ConsumedUpTo is the store time of the last message of the consumed
	// prefix (the one below ackOffset), omitted when there is none.
	ConsumedUpTo time.Time `json:"consumedUpTo,omitzero"`
}

// GroupStats is the answer of GET /v1/groups/{name}/stats.
type GroupStats struct {
	Group  string       `json:"group"`
	Queues []QueueStats `json:"queues"`
}

// ResetOffsetRequest is the body of POST /v1/groups/{name}/reset.
type ResetOffsetRequest struct {
	Topic string `json:"topic"`
	// QueueID is the one queue to reset; omitted (or -1): every queue of
	// the topic.
	QueueID *int32 `json:"queueId,omitempty"`
	// To is "earliest", "latest", an RFC 3339 time or a duration ago
	// ("1h"), read with the proxy's clock.
	To string `json:"to"`
}

// QueueReset is one queue of a reset: where the group stood (its ack
// offset) and where it stands now.
type QueueReset struct {
	Broker    string `json:"broker,omitempty"`
	QueueID   int32  `json:"queueId"`
	OldOffset int64  `json:"oldOffset"`
	NewOffset int64  `json:"newOffset"`
}

// ResetOffsetResult is the answer of POST /v1/groups/{name}/reset.
type ResetOffsetResult struct {
	Group  string       `json:"group"`
	Topic  string       `json:"topic"`
	Queues []QueueReset `json:"queues"`
}

// --- domain → wire ---

func resetDTO(group, topic string, rs []ports.OffsetReset) ResetOffsetResult {
	out := ResetOffsetResult{Group: group, Topic: topic, Queues: make([]QueueReset, 0, len(rs))}
	for _, q := range rs {
		out.Queues = append(out.Queues, QueueReset{Broker: q.Broker, QueueID: q.QueueID, OldOffset: q.OldOffset, NewOffset: q.NewOffset})
	}
	return out
}

func topicDTO(t domain.Topic) Topic {
	return Topic{
		Name:        t.Name,
		Type:        t.Type.String(),
		QueueCount:  t.QueueCount,
		Permission:  permissionName(t.Permission),
		Description: t.Description,
		CreatedAt:   t.CreatedAt,
		UpdatedAt:   t.UpdatedAt,
	}
}

func topicsDTO(ts []domain.Topic) TopicList {
	out := TopicList{Topics: make([]Topic, 0, len(ts))}
	for _, t := range ts {
		out.Topics = append(out.Topics, topicDTO(t))
	}
	return out
}

var permissionNames = map[domain.Permission]string{
	domain.PermReadWrite: "READ_WRITE",
	domain.PermRead:      "READ",
	domain.PermWrite:     "WRITE",
	domain.PermNone:      "NONE",
}

func permissionName(p domain.Permission) string {
	if s, ok := permissionNames[p]; ok {
		return s
	}
	return fmt.Sprintf("PERM_%d", uint8(p))
}

func retryDTO(p domain.RetryPolicy) RetryPolicy {
	if len(p.Delays) > 0 {
		out := RetryPolicy{Customized: make([]Duration, len(p.Delays))}
		for i, d := range p.Delays {
			out.Customized[i] = Duration(d)
		}
		return out
	}
	return RetryPolicy{Exponential: &ExponentialRetry{Initial: Duration(p.Initial), Max: Duration(p.Max), Multiplier: p.Multiplier}}
}

func groupDTO(g domain.ConsumerGroup) Group {
	return Group{
		Name:                g.Name,
		MaxDeliveryAttempts: g.MaxDeliveryAttempts,
		RetryPolicy:         retryDTO(g.RetryPolicy),
		Orderly:             g.Orderly,
		Description:         g.Description,
		CreatedAt:           g.CreatedAt,
		UpdatedAt:           g.UpdatedAt,
	}
}

func groupsDTO(gs []domain.ConsumerGroup) GroupList {
	out := GroupList{Groups: make([]Group, 0, len(gs))}
	for _, g := range gs {
		out.Groups = append(out.Groups, groupDTO(g))
	}
	return out
}

func statsDTO(group string, qs []ports.QueueStats) GroupStats {
	out := GroupStats{Group: group, Queues: make([]QueueStats, 0, len(qs))}
	for _, q := range qs {
		out.Queues = append(out.Queues, QueueStats{Topic: q.Topic, Broker: q.Broker, QueueID: q.QueueID, MaxOffset: q.MaxOffset, AckOffset: q.AckOffset,
			InFlight: q.InFlight, Consumable: q.Consumable, InFlightUnknown: q.InFlightUnknown,
			InFlightInConsumable: q.InFlightInConsumable, Backlog: q.InFlight + q.Consumable, ConsumedUpTo: q.ConsumedUpTo.UTC()})
	}
	return out
}

// --- wire → domain (server side: requests) ---

// Spec turns the request into the use case's input.
func (r ResetOffsetRequest) Spec(group string) application.ResetSpec {
	s := application.ResetSpec{Group: group, Topic: r.Topic, QueueID: -1, To: r.To}
	if r.QueueID != nil {
		s.QueueID = *r.QueueID
	}
	return s
}

func parseType(s string) (domain.MessageType, error) {
	if s == "" {
		return domain.MessageTypeUnspecified, nil
	}
	return domain.ParseTopicMessageType(s)
}

// Spec turns the request into the use case's input.
func (r CreateTopicRequest) Spec() (application.TopicSpec, error) {
	return UpdateTopicRequest{Type: r.Type, QueueCount: r.QueueCount, Description: r.Description}.Spec(r.Name)
}

// Spec turns the request into the use case's input for topic name.
func (r UpdateTopicRequest) Spec(name string) (application.TopicSpec, error) {
	t, err := parseType(r.Type)
	if err != nil {
		return application.TopicSpec{}, err
	}
	return application.TopicSpec{Name: name, Type: t, QueueCount: r.QueueCount, Description: r.Description}, nil
}

// Policy turns the wire form into the domain's, checking that exactly one
// strategy is given; the use case checks the values.
func (p RetryPolicy) Policy() (domain.RetryPolicy, error) {
	switch {
	case p.Exponential != nil && p.Customized != nil:
		return domain.RetryPolicy{}, domain.Errorf(domain.ReasonBadRequest, "retryPolicy takes either exponential or customized, not both")
	case p.Exponential != nil:
		e := p.Exponential
		return domain.RetryPolicy{Initial: time.Duration(e.Initial), Max: time.Duration(e.Max), Multiplier: e.Multiplier}, nil
	case len(p.Customized) > 0:
		out := domain.RetryPolicy{Delays: make([]time.Duration, len(p.Customized))}
		for i, d := range p.Customized {
			out.Delays[i] = time.Duration(d)
		}
		return out, nil
	}
	return domain.RetryPolicy{}, domain.Errorf(domain.ReasonBadRequest,
		`retryPolicy needs a strategy: {"exponential":{"initial":"1s","max":"2h","multiplier":2}} or {"customized":["1s","5s","10s"]}`)
}

func groupSpec(name string, attempts int32, p *RetryPolicy, orderly *bool, desc *string) (application.GroupSpec, error) {
	s := application.GroupSpec{Name: name, MaxDeliveryAttempts: attempts, Orderly: orderly, Description: desc}
	if p != nil {
		rp, err := p.Policy()
		if err != nil {
			return application.GroupSpec{}, err
		}
		s.RetryPolicy = &rp
	}
	return s, nil
}

// Spec turns the request into the use case's input.
func (r CreateGroupRequest) Spec() (application.GroupSpec, error) {
	return groupSpec(r.Name, r.MaxDeliveryAttempts, r.RetryPolicy, r.Orderly, r.Description)
}

// Spec turns the request into the use case's input for group name.
func (r UpdateGroupRequest) Spec(name string) (application.GroupSpec, error) {
	return groupSpec(name, r.MaxDeliveryAttempts, r.RetryPolicy, r.Orderly, r.Description)
}

// --- wire → domain (client side: answers) ---

// Domain converts the API's form back to the domain's.
func (t Topic) Domain() (domain.Topic, error) {
	typ, err := domain.ParseTopicMessageType(t.Type)
	if err != nil {
		return domain.Topic{}, err
	}
	perm, ok := domain.PermNone, false
	for p, name := range permissionNames {
		if name == t.Permission {
			perm, ok = p, true
		}
	}
	if !ok {
		return domain.Topic{}, domain.Errorf(domain.ReasonBadRequest, "unknown permission %q", truncate(t.Permission))
	}
	return domain.Topic{
		Name: t.Name, Type: typ, QueueCount: t.QueueCount, Permission: perm,
		Description: t.Description, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}, nil
}

// Domain converts the API's form back to the domain's.
func (g Group) Domain() (domain.ConsumerGroup, error) {
	p, err := g.RetryPolicy.Policy()
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	return domain.ConsumerGroup{
		Name: g.Name, MaxDeliveryAttempts: g.MaxDeliveryAttempts, RetryPolicy: p, Orderly: g.Orderly,
		Description: g.Description, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
	}, nil
}

// --- domain → wire (client side: requests) ---

func typeName(t domain.MessageType) string {
	if t == domain.MessageTypeUnspecified {
		return ""
	}
	return t.String()
}

func retryRequest(p *domain.RetryPolicy) *RetryPolicy {
	if p == nil {
		return nil
	}
	r := retryDTO(*p)
	return &r
}
