package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/listenaddr"
	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// DefaultClientTimeout bounds a request of a client built without an
// http.Client of its own.
const DefaultClientTimeout = 30 * time.Second

// maxResponseBody bounds what the client reads of an answer.
const maxResponseBody = 16 << 20

// Client calls the admin API. Its methods mirror [application.Admin] and
// return the server's failures as *domain.Error with the server's reason and
// message, so a CLI can print them as they are.
type Client struct {
	base string // scheme://host[:port], no trailing slash
	hc   *http.Client
	// accessKey and secret sign every request (WithCredentials).
	accessKey string
	secret    []byte
}

// WithCredentials makes the client sign every request as accessKey (a
// Super user), as a proxy with auth.enabled requires.
func (c *Client) WithCredentials(accessKey string, secret []byte) *Client {
	cp := *c
	cp.accessKey, cp.secret = accessKey, secret
	return &cp
}

// NewClient returns a client of the admin API at baseURL, such as
// "http://127.0.0.1:8082" or just "127.0.0.1:8082" (http is assumed).
// httpClient may be nil for a client with a 30s timeout.
func NewClient(baseURL string, httpClient *http.Client) (*Client, error) {
	raw := strings.TrimSpace(baseURL)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	shown := redact.Userinfo(baseURL) // never echo a password written into the URL
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin address %q is not host:port or an http(s) URL, such as 127.0.0.1:8082%s", shown, listenaddr.IPv6Hint(strings.TrimSpace(baseURL), 8082))
	}
	if u.User != nil || shown != baseURL {
		return nil, fmt.Errorf("admin address %q must not carry a user name or password, which would not be sent: calls are signed as admin.accessKey with admin.secretKey", shown)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultClientTimeout}
	}
	return &Client{base: strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), hc: httpClient}, nil
}

// Topics lists every topic, sorted by name.
func (c *Client) Topics(ctx context.Context) ([]domain.Topic, error) {
	var out TopicList
	if err := c.do(ctx, http.MethodGet, "/v1/topics", nil, &out); err != nil {
		return nil, err
	}
	return fromWireList(c, out.Topics)
}

// Topic describes one topic.
func (c *Client) Topic(ctx context.Context, name string) (domain.Topic, error) {
	return c.topic(ctx, http.MethodGet, topicPath(name), nil)
}

// CreateTopic creates a topic; zero fields of s take the server's defaults.
func (c *Client) CreateTopic(ctx context.Context, s application.TopicSpec) (domain.Topic, error) {
	req := CreateTopicRequest{Name: s.Name, Type: typeName(s.Type), QueueCount: s.QueueCount, Description: s.Description}
	return c.topic(ctx, http.MethodPost, "/v1/topics", req)
}

// UpdateTopic changes the non-zero fields of s on topic s.Name.
func (c *Client) UpdateTopic(ctx context.Context, s application.TopicSpec) (domain.Topic, error) {
	req := UpdateTopicRequest{Type: typeName(s.Type), QueueCount: s.QueueCount, Description: s.Description}
	return c.topic(ctx, http.MethodPut, topicPath(s.Name), req)
}

// DeleteTopic deletes a topic.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, topicPath(name), nil, nil)
}

// Groups lists every consumer group, sorted by name.
func (c *Client) Groups(ctx context.Context) ([]domain.ConsumerGroup, error) {
	var out GroupList
	if err := c.do(ctx, http.MethodGet, "/v1/groups", nil, &out); err != nil {
		return nil, err
	}
	return fromWireList(c, out.Groups)
}

// Group describes one consumer group.
func (c *Client) Group(ctx context.Context, name string) (domain.ConsumerGroup, error) {
	return c.group(ctx, http.MethodGet, groupPath(name), nil)
}

// CreateGroup creates a consumer group; zero and nil fields of s take
// RocketMQ's defaults.
func (c *Client) CreateGroup(ctx context.Context, s application.GroupSpec) (domain.ConsumerGroup, error) {
	req := CreateGroupRequest{Name: s.Name, MaxDeliveryAttempts: s.MaxDeliveryAttempts, RetryPolicy: retryRequest(s.RetryPolicy), Orderly: s.Orderly, Description: s.Description}
	return c.group(ctx, http.MethodPost, "/v1/groups", req)
}

// UpdateGroup changes the non-zero, non-nil fields of s on group s.Name.
func (c *Client) UpdateGroup(ctx context.Context, s application.GroupSpec) (domain.ConsumerGroup, error) {
	req := UpdateGroupRequest{MaxDeliveryAttempts: s.MaxDeliveryAttempts, RetryPolicy: retryRequest(s.RetryPolicy), Orderly: s.Orderly, Description: s.Description}
	return c.group(ctx, http.MethodPut, groupPath(s.Name), req)
}

// DeleteGroup deletes a consumer group.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, groupPath(name), nil, nil)
}

// GroupStats reports a group's progress per queue.
func (c *Client) GroupStats(ctx context.Context, name string) ([]ports.QueueStats, error) {
	var out GroupStats
	if err := c.do(ctx, http.MethodGet, groupPath(name)+"/stats", nil, &out); err != nil {
		return nil, err
	}
	qs := make([]ports.QueueStats, 0, len(out.Queues))
	for _, q := range out.Queues {
		qs = append(qs, ports.QueueStats{Topic: q.Topic, Broker: q.Broker, QueueID: q.QueueID, MaxOffset: q.MaxOffset, AckOffset: q.AckOffset,
			InFlight: q.InFlight, Consumable: q.Consumable, InFlightUnknown: q.InFlightUnknown,
			InFlightInConsumable: q.InFlightInConsumable, ConsumedUpTo: q.ConsumedUpTo})
	}
	return qs, nil
}

// ResetOffset resets a group's offsets on a topic; queueID -1 resets
// every queue of it.
func (c *Client) ResetOffset(ctx context.Context, group, topic string, queueID int32, to string) (ResetOffsetResult, error) {
	req := ResetOffsetRequest{Topic: topic, To: to}
	if queueID >= 0 {
		req.QueueID = &queueID
	}
	var out ResetOffsetResult
	err := c.do(ctx, http.MethodPost, groupPath(group)+"/reset", req, &out)
	return out, err
}

func topicPath(name string) string { return "/v1/topics/" + url.PathEscape(name) }
func groupPath(name string) string { return "/v1/groups/" + url.PathEscape(name) }

// wire is the API's form of a domain value D ([Topic], [Group]).
type wire[D any] interface {
	Domain() (D, error)
}

func (c *Client) topic(ctx context.Context, method, path string, body any) (domain.Topic, error) {
	return fromWire[domain.Topic, Topic](ctx, c, method, path, body)
}

func (c *Client) group(ctx context.Context, method, path string, body any) (domain.ConsumerGroup, error) {
	return fromWire[domain.ConsumerGroup, Group](ctx, c, method, path, body)
}

// fromWire sends one request and converts the object answered to the
// domain's form; an object it cannot convert is a bad answer.
func fromWire[D any, W wire[D]](ctx context.Context, c *Client, method, path string, body any) (D, error) {
	var out W
	if err := c.do(ctx, method, path, body, &out); err != nil {
		var zero D
		return zero, err
	}
	d, err := out.Domain()
	if err != nil {
		var zero D
		return zero, c.badAnswer(err)
	}
	return d, nil
}

// fromWireList converts the objects of a list answer to the domain's form.
func fromWireList[D any, W wire[D]](c *Client, ws []W) ([]D, error) {
	ds := make([]D, 0, len(ws))
	for _, w := range ws {
		d, err := w.Domain()
		if err != nil {
			return nil, c.badAnswer(err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func (c *Client) badAnswer(err error) error {
	return domain.Wrap(domain.ReasonInternal, err, "the admin API at "+c.base+" sent an answer this client does not understand (are the CLI and the server the same version?)")
}

// do sends one request and decodes a 2xx answer into out (when non-nil), or
// turns any other answer into a *domain.Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return fmt.Errorf("admin client: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.accessKey != "" {
		SignRequest(req, c.accessKey, c.secret, b, time.Now())
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return c.transportError(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.answerError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return c.badAnswer(err)
	}
	return nil
}

func (c *Client) transportError(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return domain.Wrap(domain.ReasonUnavailable, err, fmt.Sprintf(
			"cannot connect to the rmqproxy admin API at %s: is rmqproxy running? A proxy started with admin.enabled=false (RMQPROXY_ADMIN_ENABLED=false) has no admin API: turn it on there (it is on by default). %s", c.base, addressHint))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return domain.Wrap(domain.ReasonTimeout, err, "the admin API at "+c.base+" did not answer in time")
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return domain.Wrap(domain.ReasonUnavailable, err, "the admin API at "+c.base+" serves plain HTTP (its admin.tls.enabled is false): call it without --admin.tls.enabled (or with --admin.tls.enabled=false where RMQPROXY_ADMIN_TLS_ENABLED or admin.tls.enabled of --config FILE sets it), at an http:// address or a bare HOST:PORT")
	}
	var unknownAuthority x509.UnknownAuthorityError
	if errors.As(err, &unknownAuthority) {
		return domain.Wrap(domain.ReasonUnavailable, err, "the admin API at "+c.base+" presents a certificate this client does not trust: pass the CA that signed it with --admin.caFile")
	}
	var dial *net.OpError
	var verify *tls.CertificateVerificationError
	if (errors.As(err, &dial) && dial.Op == "dial") || errors.As(err, &verify) {
		return domain.Wrap(domain.ReasonUnavailable, err, "cannot reach the rmqproxy admin API at "+c.base)
	}
	// Connected, but no HTTP/1.1 answer came back: the peer hung up (as
	// rmqproxy's gRPC port does), answered in another protocol (a gRPC
	// server's HTTP/2 frames, "malformed HTTP response", or sent them
	// before the request, which net/http reports as a failed peek).
	return domain.Wrap(domain.ReasonUnavailable, err, fmt.Sprintf(
		"%s is not an rmqproxy admin API: it did not answer in HTTP/1.1 (it closed the connection or spoke another protocol, as rmqproxy's gRPC port, grpc.address, does). %s",
		c.base, addressHint))
}

// addressHint says where the admin API is and how to point the admin
// commands at it.
var addressHint = fmt.Sprintf("The admin API listens on the proxy's admin.address (default %s): "+
	"give that address with --admin.address HOST:PORT, RMQPROXY_ADMIN_ADDRESS or admin.address in --config FILE", DefaultAddress)

// answerError rebuilds the server's *domain.Error from its JSON error body.
// An answer that is not one (a proxy in between, another service on the
// port) becomes a bad request for 4xx and an internal error otherwise.
func (c *Client) answerError(resp *http.Response, data []byte) error {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Code != "" {
		if r, ok := ReasonOfCode(eb.Code); ok {
			msg := eb.Message
			if r == domain.ReasonUnauthorized && c.accessKey == "" {
				// The proxy has auth.enabled and this call was not signed.
				msg += "; the admin API of a proxy with auth.enabled answers signed calls only: pass --admin.accessKey (a Super user) with its secret in RMQPROXY_ADMIN_SECRET_KEY"
			}
			return &domain.Error{Reason: r, Msg: msg}
		}
		r := domain.ReasonInternal
		if resp.StatusCode < 500 {
			r = domain.ReasonBadRequest
		}
		return &domain.Error{Reason: r, Msg: fmt.Sprintf("%s: %s", eb.Code, eb.Message)}
	}
	r := domain.ReasonInternal
	if resp.StatusCode < 500 {
		r = domain.ReasonBadRequest
	}
	snippet := strings.TrimSpace(string(data))
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(snippet, "HTTP request to an HTTPS server") {
		return &domain.Error{Reason: domain.ReasonBadRequest, Msg: fmt.Sprintf(
			"the admin API at %s serves HTTPS only (its admin.tls.enabled is true): pass --admin.tls.enabled (or give an https:// address, or set RMQPROXY_ADMIN_TLS_ENABLED=true or admin.tls.enabled: true in --config FILE) and --admin.caFile with the CA of its certificate", c.base)}
	}
	if resp.StatusCode == http.StatusNotFound && resp.Request != nil {
		// Every admin route exists on an admin API: a 404 that is not its
		// JSON answer comes from another HTTP server, most often rmqproxy's
		// own health port (the README's "health and metrics on :9090").
		return &domain.Error{Reason: domain.ReasonUnavailable, Msg: fmt.Sprintf(
			"%s is not an rmqproxy admin API: it answered %s to %s %s (as rmqproxy's health port, health.address, does: it serves only /livez, /healthz, /readyz and /metrics). %s",
			c.base, resp.Status, resp.Request.Method, resp.Request.URL.Path, addressHint)}
	}
	if len(snippet) > 200 {
		snippet = snippet[:200] + "..."
	}
	return &domain.Error{Reason: r, Msg: fmt.Sprintf("%s answered %s: %q (is %s the rmqproxy admin API?)", c.base, resp.Status, snippet, c.base)}
}
