package cluster

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestNoMessageSaysWhat: a broker answers an ack or a change of the
// invisible time whose queue offset is outside its queue with NO_MESSAGE
// and the remark every response starts with, "not set any response
// code", which rmqproxy passed on to the client as the whole message.
// The code stays upstream's (INTERNAL_SERVER_ERROR: the Go push consumer
// retries a failed change, as with the Apache proxy); the message says
// what the broker found.
func TestNoMessageSaysWhat(t *testing.T) {
	err := mapError(&remoting.ResponseError{Code: remoting.ResponseNoMessage, Remark: "not set any response code"})
	if !domain.HasReason(err, domain.ReasonBrokerError) {
		t.Fatalf("reason: %v", err)
	}
	msg := domain.MessageOf(err)
	if strings.Contains(msg, "not set any response code") || !strings.Contains(msg, "no message at the receipt handle's queue offset") {
		t.Fatalf("message %q", msg)
	}
}

// TestBrokerAuthorizationDenialSaysWhatIsMissing: a broker that
// authorizes requests (ACL 2.0) refuses one its user lacks a permission
// for with NO_PERMISSION and a remark naming the user and the resource,
// not the action ("User:app has no permission to access Topic:t from
// 127.0.0.1, no matched policies."); rmqproxy passed it on with advice to
// check its credentials, which were right. The message now names the
// request and the action it needs, and where to grant it; a failed
// authentication keeps the advice on the credentials.
func TestBrokerAuthorizationDenialSaysWhatIsMissing(t *testing.T) {
	for _, tt := range []struct {
		req  remoting.RequestCode
		want []string
	}{
		{remoting.RequestGetTopicConfig, []string{"GET_TOPIC_CONFIG", "Get on Topic:t", "cluster.acl.accessKey"}},
		{remoting.RequestViewMessageById, []string{"VIEW_MESSAGE_BY_ID", "Get on Topic:t"}},
		{remoting.RequestSendMessageV2, []string{"SEND_MESSAGE_V2", "Pub on Topic:t"}},
		{remoting.RequestPopMessage, []string{"POP_MESSAGE", "Sub on Topic:t"}},
	} {
		err := mapError(&remoting.ResponseError{Code: remoting.ResponseNoPermission, Request: tt.req,
			Remark: "User:app has no permission to access Topic:t from 127.0.0.1, no matched policies."})
		msg := domain.MessageOf(err)
		if !domain.HasReason(err, domain.ReasonBrokerError) || strings.Contains(msg, "must be a user of the broker") {
			t.Errorf("%v: %v", tt.req, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: %q lacks %q", tt.req, msg, w)
			}
		}
	}
	err := mapError(&remoting.ResponseError{Code: remoting.ResponseNoPermission, Request: remoting.RequestSendMessageV2,
		Remark: "check signature failed"})
	if msg := domain.MessageOf(err); !strings.Contains(msg, "check signature failed") || !strings.Contains(msg, "cluster.acl.secretKey") {
		t.Errorf("authentication failure: %q", msg)
	}
}

// TestBrokerPermissionRefusalIsForbidden: a broker refusing a request for
// a permission an operator set on the topic, the group or the broker
// (NO_PERMISSION with the processor's remark) is FORBIDDEN, as the Apache
// proxy answers for a topic its route says is not readable or writable;
// it was INTERNAL_SERVER_ERROR with advice on rmqproxy's credentials.
func TestBrokerPermissionRefusalIsForbidden(t *testing.T) {
	for _, remark := range []string{
		"subscription group no permission, g",
		"the topic[t] peeking message is forbidden",
		"the broker[127.0.0.1] pop message is forbidden",
		"the broker[127.0.0.1] sending message is forbidden",
		"Sending message to topic[SCHEDULE_TOPIC_XXXX] is forbidden.",
		"the topic[t] pulling message is forbidden",
	} {
		err := mapError(&remoting.ResponseError{Code: remoting.ResponseNoPermission, Request: remoting.RequestPopMessage, Remark: remark})
		if msg := domain.MessageOf(err); !domain.HasReason(err, domain.ReasonForbidden) || !strings.Contains(msg, remark) || strings.Contains(msg, "cluster.acl") {
			t.Errorf("%q: %v", remark, err)
		}
	}
}
