package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func wantReason(t *testing.T, err error, r domain.Reason) *domain.Error {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Reason != r {
		t.Fatalf("want a %v error, got %v", r, err)
	}
	return de
}

func TestTopicLifecycle(t *testing.T) {
	f := startServer(t)
	ctx := t.Context()
	name := "orders%eu|1" // % and | are legal in topic names and must survive the path

	created, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	want := domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: application.DefaultTopicQueueCount,
		Permission: domain.PermReadWrite, CreatedAt: testNow.Truncate(time.Millisecond), UpdatedAt: testNow.Truncate(time.Millisecond)}
	if !reflect.DeepEqual(created, want) {
		t.Fatalf("created %+v\nwant    %+v", created, want)
	}

	_, err = f.client.CreateTopic(ctx, application.TopicSpec{Name: name})
	if de := wantReason(t, err, domain.ReasonAlreadyExists); !strings.Contains(de.Msg, "already exists") {
		t.Fatalf("message %q", de.Msg)
	}

	fifo, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: "a-fifo", Type: domain.MessageTypeFIFO, QueueCount: 2, Description: ptr("ordered")})
	if err != nil || fifo.Type != domain.MessageTypeFIFO || fifo.QueueCount != 2 || fifo.Description != "ordered" {
		t.Fatalf("create fifo: %+v %v", fifo, err)
	}

	got, err := f.client.Topic(ctx, name)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("describe: %+v %v", got, err)
	}
	list, err := f.client.Topics(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a-fifo" || list[1].Name != name {
		t.Fatalf("list: %+v %v", list, err)
	}

	// Partial update: only the description changes.
	upd, err := f.client.UpdateTopic(ctx, application.TopicSpec{Name: name, Description: ptr("EU orders")})
	if err != nil || upd.Description != "EU orders" || upd.Type != domain.MessageTypeNormal || upd.QueueCount != 8 {
		t.Fatalf("update description: %+v %v", upd, err)
	}
	upd, err = f.client.UpdateTopic(ctx, application.TopicSpec{Name: name, Type: domain.MessageTypeMixed, QueueCount: 16})
	if err != nil || upd.Type != domain.MessageTypeMixed || upd.QueueCount != 16 || upd.Description != "EU orders" {
		t.Fatalf("update type: %+v %v", upd, err)
	}
	_, err = f.client.UpdateTopic(ctx, application.TopicSpec{Name: name, QueueCount: 4})
	if de := wantReason(t, err, domain.ReasonBadRequest); !strings.Contains(de.Msg, "can only grow") {
		t.Fatalf("shrink message %q", de.Msg)
	}
	_, err = f.client.UpdateTopic(ctx, application.TopicSpec{Name: "missing"})
	wantReason(t, err, domain.ReasonTopicNotFound)

	if err := f.client.DeleteTopic(ctx, name); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Topic(ctx, name)
	if de := wantReason(t, err, domain.ReasonTopicNotFound); !strings.Contains(de.Msg, "rmqproxy topic create") {
		t.Fatalf("not found message %q", de.Msg)
	}
	// Deleting what is not there says so, and does not suggest creating it.
	if de := wantReason(t, f.client.DeleteTopic(ctx, name), domain.ReasonTopicNotFound); strings.Contains(de.Msg, "create") || !strings.Contains(de.Msg, "rmqproxy topic list") {
		t.Fatalf("delete of a missing topic: message %q, want one pointing at topic list and not at create", de.Msg)
	}

	_, err = f.client.CreateTopic(ctx, application.TopicSpec{Name: "bad name!"})
	wantReason(t, err, domain.ReasonIllegalTopic)
	_, err = f.client.CreateTopic(ctx, application.TopicSpec{Name: "TBW102"})
	wantReason(t, err, domain.ReasonIllegalTopic)
	_, err = f.client.CreateTopic(ctx, application.TopicSpec{Name: "big", QueueCount: domain.MaxQueueCount + 1})
	wantReason(t, err, domain.ReasonBadRequest)
}

func TestGroupLifecycle(t *testing.T) {
	f := startServer(t)
	ctx := t.Context()
	now := testNow.Truncate(time.Millisecond)

	g, err := f.client.CreateGroup(ctx, application.GroupSpec{Name: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	want := domain.NewConsumerGroup("billing")
	want.CreatedAt, want.UpdatedAt = now, now
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("created %+v\nwant    %+v", g, want)
	}
	_, err = f.client.CreateGroup(ctx, application.GroupSpec{Name: "billing"})
	wantReason(t, err, domain.ReasonAlreadyExists)

	exp := domain.RetryPolicy{Initial: time.Second, Max: 2 * time.Hour, Multiplier: 2}
	g2, err := f.client.CreateGroup(ctx, application.GroupSpec{Name: "audit", MaxDeliveryAttempts: 3, RetryPolicy: &exp, Orderly: ptr(true), Description: ptr("audit trail")})
	if err != nil {
		t.Fatal(err)
	}
	if g2.MaxDeliveryAttempts != 3 || !reflect.DeepEqual(g2.RetryPolicy, exp) || !g2.Orderly || g2.Description != "audit trail" {
		t.Fatalf("created %+v", g2)
	}

	custom := domain.RetryPolicy{Delays: []time.Duration{time.Second, 90 * time.Second}}
	upd, err := f.client.UpdateGroup(ctx, application.GroupSpec{Name: "audit", RetryPolicy: &custom, Orderly: ptr(false)})
	if err != nil || !reflect.DeepEqual(upd.RetryPolicy, custom) || upd.Orderly || upd.MaxDeliveryAttempts != 3 || upd.Description != "audit trail" {
		t.Fatalf("update: %+v %v", upd, err)
	}
	bad := domain.RetryPolicy{Initial: time.Minute, Max: time.Second, Multiplier: 2}
	_, err = f.client.UpdateGroup(ctx, application.GroupSpec{Name: "audit", RetryPolicy: &bad})
	wantReason(t, err, domain.ReasonBadRequest)
	_, err = f.client.UpdateGroup(ctx, application.GroupSpec{Name: "nope"})
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)

	gs, err := f.client.Groups(ctx)
	if err != nil || len(gs) != 2 || gs[0].Name != "audit" || gs[1].Name != "billing" {
		t.Fatalf("list: %+v %v", gs, err)
	}
	got, err := f.client.Group(ctx, "billing")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("describe: %+v %v", got, err)
	}

	stats := []ports.QueueStats{{Topic: "orders", QueueID: 0, MaxOffset: 10, AckOffset: 4, InFlight: 2, Consumable: 4},
		{Topic: "orders", QueueID: 1, MaxOffset: 3, AckOffset: 3}, {Topic: "orders", QueueID: 2, MaxOffset: 5, AckOffset: 1, Consumable: 4, InFlightUnknown: true}}
	f.store.mu.Lock()
	f.store.stats["billing"] = stats
	f.store.mu.Unlock()
	gotStats, err := f.client.GroupStats(ctx, "billing")
	if err != nil || !reflect.DeepEqual(gotStats, stats) {
		t.Fatalf("stats: %+v %v", gotStats, err)
	}
	// An in-flight count the broker does not report keeps "inFlight" a
	// number (0) for clients that read it, and says so beside it.
	resp, body := f.raw(t, "GET", "/v1/groups/billing/stats", "", "")
	var js struct{ Queues []map[string]any }
	if err := json.Unmarshal(body, &js); err != nil || resp.StatusCode != 200 || len(js.Queues) != 3 {
		t.Fatalf("stats JSON: %d %s (%v)", resp.StatusCode, body, err)
	}
	for i, q := range js.Queues {
		_, flagged := q["inFlightUnknown"]
		if q["inFlight"] != float64(stats[i].InFlight) || flagged != stats[i].InFlightUnknown || (flagged && q["inFlightUnknown"] != true) {
			t.Fatalf("queue %d in JSON: %v", i, q)
		}
	}
	empty, err := f.client.GroupStats(ctx, "audit")
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty stats: %+v %v", empty, err)
	}
	_, err = f.client.GroupStats(ctx, "nope")
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)

	if _, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: "orders"}); err != nil && !domain.HasReason(err, domain.ReasonAlreadyExists) {
		t.Fatal(err)
	}
	for _, c := range []struct {
		queue int32
		to    string
		want  ports.ResetOffsetRequest
	}{
		{-1, "90m", ports.ResetOffsetRequest{Group: "billing", Topic: "orders", QueueID: -1, Policy: ports.OffsetTimestamp, At: testNow.Add(-90 * time.Minute)}},
		{1, "2026-01-02T03:04:05.5+01:00", ports.ResetOffsetRequest{Group: "billing", Topic: "orders", QueueID: 1, Policy: ports.OffsetTimestamp,
			At: time.Date(2026, 1, 2, 2, 4, 5, 5e8, time.UTC)}},
		{0, "earliest", ports.ResetOffsetRequest{Group: "billing", Topic: "orders", QueueID: 0, Policy: ports.OffsetBeginning}},
		{-1, "LATEST", ports.ResetOffsetRequest{Group: "billing", Topic: "orders", QueueID: -1, Policy: ports.OffsetEnd}},
	} {
		res, err := f.client.ResetOffset(ctx, "billing", "orders", c.queue, c.to)
		if err != nil || res.Group != "billing" || res.Topic != "orders" || len(res.Queues) == 0 || res.Queues[0] != (admin.QueueReset{QueueID: 0, OldOffset: 5, NewOffset: 2}) {
			t.Fatalf("reset to %s: %+v %v", c.to, res, err)
		}
		f.store.mu.Lock()
		got := f.store.resets[len(f.store.resets)-1]
		f.store.mu.Unlock()
		if got.Group != c.want.Group || got.Topic != c.want.Topic || got.QueueID != c.want.QueueID || got.Policy != c.want.Policy || !got.At.Equal(c.want.At) {
			t.Fatalf("reset to %s reached the store as %+v, want %+v", c.to, got, c.want)
		}
	}

	if err := f.client.DeleteGroup(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Group(ctx, "billing")
	if de := wantReason(t, err, domain.ReasonConsumerGroupNotFound); !strings.Contains(de.Msg, "rmqproxy group create") {
		t.Fatalf("message %q", de.Msg)
	}
	if de := wantReason(t, f.client.DeleteGroup(ctx, "billing"), domain.ReasonConsumerGroupNotFound); strings.Contains(de.Msg, "create") || !strings.Contains(de.Msg, "rmqproxy group list") {
		t.Fatalf("delete of a missing group: message %q, want one pointing at group list and not at create", de.Msg)
	}
	_, err = f.client.CreateGroup(ctx, application.GroupSpec{Name: "CID_RMQ_SYS_x"})
	wantReason(t, err, domain.ReasonIllegalConsumerGroup)
}

// TestEveryReasonReachesTheClient sends each domain reason from the store
// through the use case, the server's mapping and the client's, and checks
// the client rebuilds the same reason and message.
func TestEveryReasonReachesTheClient(t *testing.T) {
	f := startServer(t)
	f.logs.allowErrors() // ReasonInternal is logged at Error
	for _, r := range domain.Reasons() {
		t.Run(r.String(), func(t *testing.T) {
			f.store.setFail(domain.Errorf(r, "failure %d", r))
			_, err := f.client.Topics(t.Context())
			de := wantReason(t, err, r)
			if r == domain.ReasonInternal {
				if strings.Contains(de.Msg, "failure") || !strings.Contains(de.Msg, "internal error (id ") {
					t.Fatalf("internal message leaked or lacks an id: %q", de.Msg)
				}
				return
			}
			want := "failure " + strconv.Itoa(int(r))
			if r == domain.ReasonUnauthorized {
				// An unsigned client adds how to sign
				// (TestClientUnsignedCallToAuthenticatedAPI).
				want += "; the admin API of a proxy with auth.enabled answers signed calls only"
				if !strings.HasPrefix(de.Msg, want) {
					t.Fatalf("message %q, want it to start with %q", de.Msg, want)
				}
				return
			}
			if de.Msg != want {
				t.Fatalf("message %q, want %q", de.Msg, want)
			}
		})
	}
}

func TestInternalErrorsAreMaskedAndLogged(t *testing.T) {
	f := startServer(t)
	f.logs.allowErrors()
	f.store.setFail(errors.New(`pq: relation "secret_table" does not exist`))

	resp, body := f.raw(t, http.MethodGet, "/v1/topics", "", "")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var eb admin.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatal(err)
	}
	if eb.Code != "INTERNAL" || !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(eb.ErrorID) {
		t.Fatalf("body %+v", eb)
	}
	if strings.Contains(string(body), "secret_table") || strings.Contains(string(body), "pq:") {
		t.Fatalf("internal error leaked: %s", body)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"error_id":"`+eb.ErrorID+`"`) || !strings.Contains(logs, "secret_table") {
		t.Fatalf("log lacks the id %s with the full error:\n%s", eb.ErrorID, logs)
	}

	_, err := f.client.Topics(t.Context())
	if de := wantReason(t, err, domain.ReasonInternal); strings.Contains(de.Msg, "secret") || !strings.Contains(de.Msg, "id ") {
		t.Fatalf("client message %q", de.Msg)
	}
}

// raw sends a request without the client, for what the client never sends.
func (f *fixture) raw(t *testing.T, method, path, contentType, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestRequestDecoding(t *testing.T) {
	f := startServer(t)
	if _, err := f.client.CreateTopic(t.Context(), application.TopicSpec{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.CreateGroup(t.Context(), application.GroupSpec{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
		msg                             string // substring of the message
	}{
		{"create topic", "POST", "/v1/topics", "application/json", `{"name":"x","type":"fifo","queueCount":2}`, 201, "", ""},
		{"content type with charset", "POST", "/v1/topics", "application/json; charset=utf-8", `{"name":"y"}`, 201, "", ""},
		{"unknown field", "POST", "/v1/topics", "application/json", `{"name":"z","queues":2}`, 400, "BAD_REQUEST", `unknown field "queues"`},
		{"unknown field on update", "PUT", "/v1/topics/t", "application/json", `{"name":"t"}`, 400, "BAD_REQUEST", `unknown field "name"`},
		{"trailing data", "POST", "/v1/topics", "application/json", `{"name":"z"} {}`, 400, "BAD_REQUEST", "exactly one JSON object"},
		{"trailing garbage", "POST", "/v1/topics", "application/json", `{"name":"z"} x`, 400, "BAD_REQUEST", "not valid JSON"},
		{"null body", "POST", "/v1/topics", "application/json", `null`, 400, "BAD_REQUEST", "not null"},
		{"empty body", "POST", "/v1/topics", "application/json", ``, 400, "BAD_REQUEST", "empty"},
		{"array body", "POST", "/v1/topics", "application/json", `[]`, 400, "BAD_REQUEST", "must be a JSON object"},
		{"truncated", "POST", "/v1/topics", "application/json", `{"name":`, 400, "BAD_REQUEST", "truncated"},
		{"wrong type", "POST", "/v1/topics", "application/json", `{"name":"z","queueCount":"8"}`, 400, "BAD_REQUEST", `"queueCount" must be a whole number`},
		{"int32 overflow", "POST", "/v1/topics", "application/json", `{"name":"z","queueCount":4294967296}`, 400, "BAD_REQUEST", "queueCount"},
		{"bad message type", "POST", "/v1/topics", "application/json", `{"name":"z","type":"BATCH"}`, 400, "BAD_REQUEST", "NORMAL"},
		{"bad content type", "POST", "/v1/topics", "text/plain", `{"name":"z"}`, 415, "UNSUPPORTED_MEDIA_TYPE", `has Content-Type "text/plain"; send the body as JSON with Content-Type: application/json`},
		{"no content type", "POST", "/v1/topics", "", `{"name":"z"}`, 415, "UNSUPPORTED_MEDIA_TYPE", "has no Content-Type"},
		{"form post", "POST", "/v1/topics", "application/x-www-form-urlencoded", `name=z`, 415, "UNSUPPORTED_MEDIA_TYPE", "application/x-www-form-urlencoded"},
		{"multipart form post", "POST", "/v1/groups", "multipart/form-data; boundary=x", "--x\r\n", 415, "UNSUPPORTED_MEDIA_TYPE", "multipart/form-data"},
		{"update without content type", "PUT", "/v1/topics/t", "", `{}`, 415, "UNSUPPORTED_MEDIA_TYPE", "PUT /v1/topics/t has no Content-Type"},
		{"empty post without content type", "POST", "/v1/groups", "", ``, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"delete with a text body", "DELETE", "/v1/topics/t", "text/plain", `x`, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"json suffix type is not json", "POST", "/v1/topics", "application/problem+json", `{"name":"z"}`, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"get without content type", "GET", "/v1/topics/t", "", ``, 200, "", ""},
		{"body too large", "POST", "/v1/topics", "application/json", `{"name":"z","description":"` + strings.Repeat("x", admin.MaxRequestBody) + `"}`, 413, "MESSAGE_BODY_TOO_LARGE", "larger than the limit of 65536 bytes"},
		{"illegal topic name", "POST", "/v1/topics", "application/json", `{"name":"a b"}`, 400, "ILLEGAL_TOPIC", "illegal character"},
		{"both retry strategies", "POST", "/v1/groups", "application/json", `{"name":"h","retryPolicy":{"exponential":{"initial":"1s","max":"1m","multiplier":2},"customized":["1s"]}}`, 400, "BAD_REQUEST", "not both"},
		{"no retry strategy", "POST", "/v1/groups", "application/json", `{"name":"h","retryPolicy":{}}`, 400, "BAD_REQUEST", "needs a strategy"},
		{"empty customized", "POST", "/v1/groups", "application/json", `{"name":"h","retryPolicy":{"customized":[]}}`, 400, "BAD_REQUEST", "needs a strategy"},
		{"numeric duration", "POST", "/v1/groups", "application/json", `{"name":"h","retryPolicy":{"customized":[1000]}}`, 400, "BAD_REQUEST", `must be a string such as "10s"`},
		{"bad duration", "POST", "/v1/groups", "application/json", `{"name":"h","retryPolicy":{"customized":["soon"]}}`, 400, "BAD_REQUEST", `invalid duration "soon"`},
		{"negative delay", "POST", "/v1/groups", "application/json", `{"name":"h","retryPolicy":{"customized":["-1s"]}}`, 400, "BAD_REQUEST", "positive"},
		{"exponential group", "POST", "/v1/groups", "application/json", `{"name":"h","retryPolicy":{"exponential":{"initial":"1s","max":"2h","multiplier":2}}}`, 201, "", ""},
		{"customized group update", "PUT", "/v1/groups/g", "application/json", `{"retryPolicy":{"customized":["1s","5s"]},"orderly":true}`, 200, "", ""},
		{"empty update", "PUT", "/v1/topics/t", "application/json", `{}`, 200, "", ""},
		{"method not allowed", "PATCH", "/v1/topics/t", "application/json", `{}`, 405, "METHOD_NOT_ALLOWED", "GET, PUT, DELETE"},
		{"method not allowed on collection", "DELETE", "/v1/groups", "", ``, 405, "METHOD_NOT_ALLOWED", "GET, POST"},
		{"unknown path", "GET", "/v2/topics", "", ``, 404, "NOT_FOUND", "no such endpoint"},
		{"illegal group in stats", "GET", "/v1/groups/a%20b/stats", "", ``, 400, "ILLEGAL_CONSUMER_GROUP", ""},
		{"clients", "GET", "/v1/clients?group=g&topic=t", "", ``, 200, "", ""},
		{"clients with an unknown parameter", "GET", "/v1/clients?tpoic=t", "", ``, 400, "BAD_REQUEST", `unknown query parameter "tpoic"`},
		{"stack of an unknown client", "POST", "/v1/clients/nobody/stack", "application/json", `{}`, 404, "NOT_FOUND", "no client nobody is known"},
		{"stack without content type", "POST", "/v1/clients/nobody/stack", "", ``, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"stack with a field", "POST", "/v1/clients/nobody/stack", "application/json", `{"nonce":"1"}`, 400, "BAD_REQUEST", `unknown field "nonce"`},
		{"stack by GET", "GET", "/v1/clients/nobody/stack", "", ``, 405, "METHOD_NOT_ALLOWED", "POST"},
		{"verify with an unknown field", "POST", "/v1/clients/nobody/verify", "application/json", `{"topic":"t","id":"m"}`, 400, "BAD_REQUEST", `unknown field "id"`},
		{"verify with an unknown client", "POST", "/v1/clients/nobody/verify", "application/json", `{"topic":"t","messageId":"m"}`, 404, "NOT_FOUND", "rmqproxy client list"},
		{"verify with an illegal topic", "POST", "/v1/clients/nobody/verify", "application/json", `{"topic":"a b","messageId":"m"}`, 400, "ILLEGAL_TOPIC", ""},
		{"reset", "POST", "/v1/groups/g/reset", "application/json", `{"topic":"t","to":"1h"}`, 200, "", ""},
		{"reset without content type", "POST", "/v1/groups/g/reset", "", `{"topic":"t","to":"1h"}`, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"reset by GET", "GET", "/v1/groups/g/reset", "", ``, 405, "METHOD_NOT_ALLOWED", "POST"},
		{"reset to an unreadable time", "POST", "/v1/groups/g/reset", "application/json", `{"topic":"t","to":"yesterday"}`, 400, "BAD_REQUEST", "earliest, latest"},
		{"reset to nowhere", "POST", "/v1/groups/g/reset", "application/json", `{"topic":"t"}`, 400, "BAD_REQUEST", "say where to reset to"},
		{"reset to a negative duration", "POST", "/v1/groups/g/reset", "application/json", `{"topic":"t","to":"-1h"}`, 400, "BAD_REQUEST", "positive"},
		{"reset without a topic", "POST", "/v1/groups/g/reset", "application/json", `{"to":"latest"}`, 400, "BAD_REQUEST", "which topic"},
		{"reset of a negative queue", "POST", "/v1/groups/g/reset", "application/json", `{"topic":"t","queueId":-3,"to":"earliest"}`, 400, "BAD_REQUEST", "negative"},
		{"reset on an unknown topic", "POST", "/v1/groups/g/reset", "application/json", `{"topic":"nope","to":"latest"}`, 404, "TOPIC_NOT_FOUND", "rmqproxy topic list"},
		{"reset of an unknown group", "POST", "/v1/groups/nope/reset", "application/json", `{"topic":"t","to":"latest"}`, 404, "CONSUMER_GROUP_NOT_FOUND", "rmqproxy group list"},
		{"reset with an unknown field", "POST", "/v1/groups/g/reset", "application/json", `{"topic":"t","to":"latest","queue":1}`, 400, "BAD_REQUEST", `unknown field "queue"`},
		{"delete", "DELETE", "/v1/topics/t", "", ``, 204, "", ""},
	}
	log := slog.New(slog.DiscardHandler)
	f.server.UseClientOps(application.NewClientOps(application.DefaultConfig(), application.NewSessions(application.DefaultConfig(), fixedClock{}, log), nil, nil, log))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.raw(t, tt.method, tt.path, tt.ctype, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code == "" {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			var eb admin.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if eb.Code != tt.code || !strings.Contains(eb.Message, tt.msg) {
				t.Fatalf("got %+v, want code %s and message with %q", eb, tt.code, tt.msg)
			}
			if tt.status == 405 && resp.Header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
}

// TestClientsWithoutClientOperations: a server not given the client
// operations answers their endpoints NOT_IMPLEMENTED.
func TestClientsWithoutClientOperations(t *testing.T) {
	f := startServer(t)
	if _, err := f.client.Clients(t.Context(), application.ClientFilter{}); domain.ReasonOf(err) != domain.ReasonNotImplemented {
		t.Fatalf("Clients: %v", err)
	}
	if _, err := f.client.ClientStack(t.Context(), "x"); domain.ReasonOf(err) != domain.ReasonNotImplemented {
		t.Fatalf("ClientStack: %v", err)
	}
}

// TestHostHeader: the API answers requests addressed to loopback, to the
// host of admin.address and to admin.allowedHosts, and refuses any other
// Host (a DNS-rebinding page) with a 403 that says how to allow it.
func TestHostHeader(t *testing.T) {
	store := newFakeStore()
	logger, _ := newLogger(t)
	cfg := admin.Config{Enabled: true, Address: "127.0.0.1:0", AllowedHosts: []string{"Admin.Example.COM", "10.1.2.3:8082", "[fd00::1]"}}
	srv := admin.New(cfg, application.NewAdmin(store, fixedClock{}), logger)
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "http://" + srv.Addr().String()
	tests := []struct {
		host string
		ok   bool
	}{
		{srv.Addr().String(), true},
		{"127.0.0.1", true},
		{"127.8.9.10:1", true},
		{"localhost:8082", true},
		{"LOCALHOST.", true},
		{"[::1]:8082", true},
		{"[::ffff:127.0.0.1]:8082", true},
		{"admin.example.com", true},
		{"admin.example.com:9999", true},
		{"10.1.2.3:8082", true},
		{"[fd00::1]:1234", true},
		{"10.1.2.3:8083", false}, // allowed on 8082 only
		{"10.1.2.3", false},
		{"evil.example", false},
		{"evil.example:8082", false},
		{"localhost.evil.example", false},
		{"127.0.0.1.evil.example", false},
		{"admin.example.com.evil.example", false},
		{"0.0.0.0:8082", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "POST", base+"/v1/topics", strings.NewReader(`{"name":"t`+strconv.Itoa(len(tt.host))+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if tt.ok {
				if resp.StatusCode == http.StatusForbidden {
					t.Fatalf("refused: %s", body)
				}
				return
			}
			var eb admin.ErrorBody
			if resp.StatusCode != http.StatusForbidden || json.Unmarshal(body, &eb) != nil || eb.Code != "FORBIDDEN" {
				t.Fatalf("status %d %s, want 403 FORBIDDEN", resp.StatusCode, body)
			}
			for _, want := range []string{"does not answer requests for host", "admin.allowedHosts", "RMQPROXY_ADMIN_ALLOWED_HOSTS"} {
				if !strings.Contains(eb.Message, want) {
					t.Fatalf("message %q lacks %q", eb.Message, want)
				}
			}
		})
	}
	if n := len(store.topics); n == 0 {
		t.Fatal("no allowed request reached the store")
	}

	// The client reports the refusal as the server's forbidden error.
	c, err := admin.NewClient(base, &http.Client{Transport: &hostRewriter{host: "evil.example", next: tr}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Topics(t.Context())
	if de := wantReason(t, err, domain.ReasonForbidden); !strings.Contains(de.Msg, "admin.allowedHosts") {
		t.Fatalf("client error %q", de.Msg)
	}
}

// TestAllowedHostsWildcardAndListenHost: "*" turns the check off, and the
// host of a specific admin.address is allowed without configuration.
func TestAllowedHostsWildcardAndListenHost(t *testing.T) {
	for _, tt := range []struct {
		cfg  admin.Config
		host string
		want int
	}{
		{admin.Config{Enabled: true, AllowedHosts: []string{"*"}}, "evil.example", http.StatusOK},
		{admin.Config{Enabled: true, Address: "10.9.8.7:8082"}, "10.9.8.7:8082", http.StatusOK},
		{admin.Config{Enabled: true, Address: "myhost:8082"}, "MYHOST:8082", http.StatusOK},
		{admin.Config{Enabled: true, Address: "0.0.0.0:8082"}, "0.0.0.0:8082", http.StatusForbidden},
		{admin.Config{Enabled: true, Address: ":8082"}, "evil.example", http.StatusForbidden},
		{admin.Config{Enabled: true}, "", http.StatusForbidden},
	} {
		s := admin.New(tt.cfg, application.NewAdmin(newFakeStore(), fixedClock{}), slog.New(slog.DiscardHandler))
		req := httptest.NewRequest("GET", "http://x/v1/topics", nil)
		req.Host = tt.host
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%+v, Host %q: %d %s, want %d", tt.cfg, tt.host, rec.Code, rec.Body.String(), tt.want)
		}
	}
}

type hostRewriter struct {
	host string
	next http.RoundTripper
}

func (h *hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = h.host
	return h.next.RoundTrip(r)
}

func TestCreatedTopicJSON(t *testing.T) {
	f := startServer(t)
	resp, body := f.raw(t, "POST", "/v1/topics", "application/json", `{"name":"t","type":"DELAY","description":"d"}`)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/v1/topics/t" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "t", "type": "DELAY", "queueCount": 8.0, "permission": "READ_WRITE", "description": "d",
		"createdAt": "2026-01-02T03:04:05.006Z", "updatedAt": "2026-01-02T03:04:05.006Z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}

	resp, body = f.raw(t, "POST", "/v1/groups", "application/json", `{"name":"g"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var g struct {
		RetryPolicy map[string][]string `json:"retryPolicy"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatal(err)
	}
	if c := g.RetryPolicy["customized"]; len(c) != 18 || c[0] != "1s" || c[4] != "1m" || c[17] != "2h" {
		t.Fatalf("default retry policy %v", g.RetryPolicy)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := clientTo(t, addr)
	_, err = c.Topics(t.Context())
	de := wantReason(t, err, domain.ReasonUnavailable)
	// admin.enabled=false on the proxy is a cause too: nothing listens.
	for _, want := range []string{"is rmqproxy running?", "admin.address", "127.0.0.1:8082", "--admin.address", addr, "admin.enabled"} {
		if !strings.Contains(de.Msg, want) {
			t.Errorf("message lacks %q: %s", want, de.Msg)
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Error("cause not kept")
	}
}

func TestClientNonAPIAnswer(t *testing.T) {
	f := startServer(t)
	// A base URL with a path is kept: here it leads outside the API, whose
	// JSON 404 the client turns into a NotFound error.
	c, err := admin.NewClient(f.base+"/nope", f.http)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Topics(t.Context())
	wantReason(t, err, domain.ReasonNotFound)
}

// TestClientBadAnswers checks that an answer the client cannot turn into
// domain values, for one object or in a list, is an internal error saying
// so, not a zero value.
func TestClientBadAnswers(t *testing.T) {
	answers := map[string]string{
		"/v1/topics":   `{"topics":[{"name":"t","type":"NORMAL","queueCount":8,"permission":"SOMETIMES"}]}`,
		"/v1/topics/t": `{"name":"t","type":"BATCH","queueCount":8,"permission":"READ_WRITE"}`,
		"/v1/groups":   `{"groups":[{"name":"g","retryPolicy":{}}]}`,
		"/v1/groups/g": `{"name":"g","retryPolicy":{"customized":["1s"],"exponential":{"initial":"1s","max":"2s","multiplier":2}}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answers[r.URL.Path])
	}))
	t.Cleanup(srv.Close)
	c := clientTo(t, srv.URL)
	for _, tt := range []struct {
		name string
		call func(context.Context) (any, error)
	}{
		{"topics", func(ctx context.Context) (any, error) { return c.Topics(ctx) }},
		{"topic", func(ctx context.Context) (any, error) { return c.Topic(ctx, "t") }},
		{"groups", func(ctx context.Context) (any, error) { return c.Groups(ctx) }},
		{"group", func(ctx context.Context) (any, error) { return c.Group(ctx, "g") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.call(t.Context())
			de := wantReason(t, err, domain.ReasonInternal)
			if !strings.Contains(de.Msg, "sent an answer this client does not understand") {
				t.Errorf("message %q", de.Msg)
			}
			if rv := reflect.ValueOf(v); !rv.IsZero() {
				t.Errorf("value %+v returned with the error", v)
			}
		})
	}
}

func TestNewClientAddresses(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:8082", true}, {"http://localhost:8082/", true}, {"https://admin.example:443", true},
		{"", false}, {"ftp://x", false}, {"http://", false}, {"::", false},
	} {
		_, err := admin.NewClient(tt.in, nil)
		if (err == nil) != tt.ok {
			t.Errorf("NewClient(%q): %v", tt.in, err)
		}
	}
}

func TestStartFailsWhenAddressInUse(t *testing.T) {
	f := startServer(t)
	logger, _ := newLogger(t)
	second := admin.New(admin.Config{Enabled: true, Address: f.server.Addr().String()}, application.NewAdmin(newFakeStore(), fixedClock{}), logger)
	err := second.Start(t.Context())
	if err == nil {
		_ = second.Stop(t.Context())
		t.Fatal("no error")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "admin.address") {
		t.Fatalf("error %v", err)
	}
	if err := second.Stop(t.Context()); err != nil {
		t.Fatalf("stop of a server that never started: %v", err)
	}
}

func TestDisabled(t *testing.T) {
	logger, _ := newLogger(t)
	s := admin.New(admin.Config{Enabled: false, Address: "127.0.0.1:0"}, application.NewAdmin(newFakeStore(), fixedClock{}), logger)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Fatal("disabled server listens")
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// startWithRequestInFlight starts a server whose store holds ListTopics
// until release is called, sends it a list request and returns once the
// request has reached the store, with the channel its outcome arrives on.
func startWithRequestInFlight(t *testing.T) (s *admin.Server, release func(), result <-chan error) {
	t.Helper()
	logger, _ := newLogger(t)
	store := newFakeStore()
	store.block, store.entered = make(chan struct{}), make(chan struct{}, 1)
	release = sync.OnceFunc(func() { close(store.block) })
	t.Cleanup(release)
	s = admin.New(admin.Config{Enabled: true, Address: "127.0.0.1:0"}, application.NewAdmin(store, fixedClock{}), logger)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := clientTo(t, s.Addr().String())
	res := make(chan error, 1)
	go func() {
		_, err := c.Topics(context.Background())
		res <- err
	}()
	<-store.entered // the request is in flight
	return s, release, res
}

func TestGracefulStop(t *testing.T) {
	s, release, result := startWithRequestInFlight(t)
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned before the in-flight request finished: %v", err)
	case err := <-result:
		t.Fatalf("request finished before release: %v", err)
	case <-time.After(50 * time.Millisecond): // a negative check: nothing may happen yet
	}
	release()
	if err := <-result; err != nil {
		t.Fatalf("in-flight request failed: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestStopDeadlineCancelsRequests(t *testing.T) {
	s, _, result := startWithRequestInFlight(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the stop deadline has passed
	if err := s.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-result; err == nil {
		t.Fatal("request cut by the shutdown succeeded")
	}
}

func TestModule(t *testing.T) {
	logger, _ := newLogger(t)
	var srv *admin.Server
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(admin.Config{Enabled: true, Address: "127.0.0.1:0"}, logger),
		fx.Provide(func() *application.Admin { return application.NewAdmin(newFakeStore(), fixedClock{}) }),
		admin.Module,
		fx.Populate(&srv),
	)
	app.RequireStart()
	tr := &http.Transport{}
	c, _ := admin.NewClient(srv.Addr().String(), &http.Client{Transport: tr})
	if _, err := c.CreateTopic(t.Context(), application.TopicSpec{Name: "via-fx"}); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	app.RequireStop()
	if _, err := c.Topics(t.Context()); err == nil {
		t.Fatal("server still answers after stop")
	}
}

func TestModuleStartFailsOnTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	logger, _ := newLogger(t)
	app := fx.New(
		fx.NopLogger,
		fx.Supply(admin.Config{Enabled: true, Address: ln.Addr().String()}, logger),
		fx.Provide(func() *application.Admin { return application.NewAdmin(newFakeStore(), fixedClock{}) }),
		admin.Module,
	)
	err = app.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "admin.address") {
		t.Fatalf("start: %v", err)
	}
	_ = app.Stop(t.Context())
}

func TestConfig(t *testing.T) {
	if err := admin.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if c := admin.DefaultConfig(); c.Address != "127.0.0.1:8082" || !c.Enabled {
		t.Fatalf("defaults %+v", c)
	}
	for _, tt := range []struct {
		cfg admin.Config
		ok  bool
	}{
		{admin.Config{Enabled: true, Address: ":8082"}, true},
		{admin.Config{Enabled: true, Address: "[::1]:0"}, true},
		{admin.Config{Enabled: true, Address: ""}, false},
		{admin.Config{Enabled: true, Address: "localhost"}, false},
		{admin.Config{Enabled: true, Address: "localhost:http"}, false},
		{admin.Config{Enabled: true, Address: "localhost:70000"}, false},
		{admin.Config{Enabled: false, Address: ""}, true},
		{admin.Config{Enabled: true, Address: ":8082", AllowedHosts: []string{"admin.example.com", "10.0.0.5:8082", "[fd00::1]", "*"}}, true},
		{admin.Config{Enabled: true, Address: ":8082", AllowedHosts: []string{"http://admin.example.com"}}, false},
		{admin.Config{Enabled: true, Address: ":8082", AllowedHosts: []string{""}}, false},
		{admin.Config{Enabled: true, Address: ":8082", AllowedHosts: []string{"a b"}}, false},
	} {
		tt.cfg.HandshakeTimeout = admin.DefaultHandshakeTimeout // its own cases below
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.cfg, err)
		}
	}
	for _, d := range []time.Duration{0, -time.Second} {
		cfg := admin.DefaultConfig()
		cfg.HandshakeTimeout = d
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "handshakeTimeout must be positive") {
			t.Errorf("handshakeTimeout %v: %v, want it refused", d, err)
		}
	}
}

// TestClientUnsignedCallToAuthenticatedAPI: a CLI run without
// --admin.accessKey against a proxy with auth.enabled is told to sign its
// calls, not only to check credentials it was never given; a signed call
// that is refused keeps the proxy's answer alone.
func TestClientUnsignedCallToAuthenticatedAPI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":"UNAUTHORIZED","message":"authentication failed: check the AccessKey and SecretKey the client is configured with"}`)
	}))
	t.Cleanup(srv.Close)
	c := clientTo(t, srv.URL)
	_, err := c.Topics(t.Context())
	de := wantReason(t, err, domain.ReasonUnauthorized)
	if !strings.Contains(de.Msg, "--admin.accessKey") || !strings.Contains(de.Msg, "RMQPROXY_ADMIN_SECRET_KEY") {
		t.Errorf("unsigned call refused with %q: does not say how to sign", de.Msg)
	}
	_, err = c.WithCredentials("admin", []byte("a-long-random-secret-1")).Topics(t.Context())
	de = wantReason(t, err, domain.ReasonUnauthorized)
	if strings.Contains(de.Msg, "--admin.accessKey") {
		t.Errorf("signed call refused with %q: hints at signing", de.Msg)
	}
}

// TestReservedTopicNames: an operator cannot create or change a topic under
// a name RocketMQ keeps for itself, and the answer names what is reserved.
// Local mode let `topic create %RETRY%x` through, which cluster mode
// refused; dead-letter topics stay allowed, as on upstream's brokers.
func TestReservedTopicNames(t *testing.T) {
	f := startServer(t)
	ctx := t.Context()
	for name, want := range map[string]string{
		"%RETRY%x":                 `prefix "%RETRY%"`,
		"rmq_sys_x":                `prefix "rmq_sys_"`,
		"TBW102":                   "TBW102",
		"SCHEDULE_TOPIC_XXXX":      "SCHEDULE_TOPIC_XXXX",
		"RMQ_SYS_TRANS_HALF_TOPIC": "RMQ_SYS_TRANS_HALF_TOPIC",
	} {
		_, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: name})
		if de := wantReason(t, err, domain.ReasonIllegalTopic); !strings.Contains(de.Msg, "reserved") || !strings.Contains(de.Msg, want) {
			t.Errorf("create %s: message %q does not name %s as reserved", name, de.Msg, want)
		}
		_, err = f.client.UpdateTopic(ctx, application.TopicSpec{Name: name})
		wantReason(t, err, domain.ReasonIllegalTopic)
	}
	if _, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: "%DLQ%g", QueueCount: 1}); err != nil {
		t.Fatalf("create %%DLQ%%g: %v", err)
	}
}

// TestReservedGroupAndDeadLetterNames: `group create %RETRY%g` and `topic
// create %DLQ%` (a dead-letter topic of no group) were accepted, and in
// local mode so was `group create SCHEDULE_CONSUMER`, which cluster mode
// refused: each is refused, in both modes (application.Admin), with a
// message saying what the name is reserved for.
func TestReservedGroupAndDeadLetterNames(t *testing.T) {
	f := startServer(t)
	ctx := t.Context()
	for name, want := range map[string]string{
		"%RETRY%g":          `prefix "%RETRY%"`,
		"%DLQ%g":            `prefix "%DLQ%"`,
		"SCHEDULE_CONSUMER": "RocketMQ's own",
		"TOOLS_CONSUMER":    "RocketMQ's own",
	} {
		_, err := f.client.CreateGroup(ctx, application.GroupSpec{Name: name})
		if de := wantReason(t, err, domain.ReasonIllegalConsumerGroup); !strings.Contains(de.Msg, "reserved") || !strings.Contains(de.Msg, want) {
			t.Errorf("group create %s: message %q does not say it is reserved (%s)", name, de.Msg, want)
		}
	}
	for name, want := range map[string]string{
		"%DLQ%":         "names no group",
		"%DLQ%%RETRY%g": `prefix "%RETRY%"`,
	} {
		_, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: name})
		if de := wantReason(t, err, domain.ReasonIllegalTopic); !strings.Contains(de.Msg, want) {
			t.Errorf("topic create %s: message %q does not say why (%s)", name, de.Msg, want)
		}
	}
	if _, err := f.client.CreateGroup(ctx, application.GroupSpec{Name: "ns%g"}); err != nil {
		t.Errorf("group create ns%%g (a namespaced group): %v", err)
	}
	if _, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: "%DLQ%ns%g", QueueCount: 1}); err != nil {
		t.Errorf("topic create %%DLQ%%ns%%g: %v", err)
	}
}
