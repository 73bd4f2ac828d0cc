package cluster

import (
	"encoding/base64"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestRecallOfAnotherTopicsHandleIsBadRequest: a recall handle of another
// topic is BAD_REQUEST naming the handle's topic, as in local mode, and
// reaches no broker, which would answer ILLEGAL_OPERATION "topic not
// match" (INTERNAL_SERVER_ERROR for the client). The handle's own topic is
// recalled.
func TestRecallOfAnotherTopicsHandleIsBadRequest(t *testing.T) {
	var recalls atomic.Int32
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestRecallMessage:
			recalls.Add(1)
			var h remoting.RecallMessageRequestHeader
			if err := h.DecodeFields(req.Fields); err != nil {
				return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
			}
			if h.Topic != "T" {
				return remoting.NewResponse(req, remoting.ResponseIllegalOperation, "recall failed, topic not match")
			}
			resp.Fields = (&remoting.RecallMessageResponseHeader{MsgID: "01AB"}).AppendFields(nil)
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	handle := base64.URLEncoding.EncodeToString([]byte("v1 T b1 " + strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10) + " 01AB"))
	if _, err := b.Recall(t.Context(), "U", handle); domain.ReasonOf(err) != domain.ReasonBadRequest || !strings.Contains(err.Error(), `"T"`) {
		t.Errorf("recall of topic T's handle as topic U: %v; want BAD_REQUEST naming T", err)
	}
	if n := recalls.Load(); n != 0 {
		t.Errorf("%d recalls of another topic's handle reached the broker", n)
	}
	if id, err := b.Recall(t.Context(), "T", handle); err != nil || id != "01AB" {
		t.Fatalf("recall of topic T's handle: %q, %v", id, err)
	}
}

// TestRecallRefusedByTheBrokersACLNamesTheACL: a broker's NO_PERMISSION to
// a RECALL_MESSAGE was always explained as recallMessageEnable being false,
// also when its ACL refused rmqproxy's broker user: an operator turned on
// a setting that was on already. Only the broker's own refusal ("recall
// failed, operation is forbidden") names the setting; an ACL refusal names
// the user and the permission it lacks.
func TestRecallRefusedByTheBrokersACLNamesTheACL(t *testing.T) {
	var remark atomic.Value
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestRecallMessage {
			return remoting.NewResponse(req, remoting.ResponseNoPermission, remark.Load().(string))
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	handle := base64.URLEncoding.EncodeToString([]byte("v1 T b1 " + strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10) + " 01AB"))
	for _, c := range []struct {
		remark      string
		want, wantN string
	}{
		{"recall failed, operation is forbidden", "recallMessageEnable", "cluster.acl"},
		{"User:rmqproxy has no permission to access Topic:T from 127.0.0.1, no matched policies.", "cluster.acl.accessKey", "recallMessageEnable"},
	} {
		remark.Store(c.remark)
		_, err := b.Recall(t.Context(), "T", handle)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.wantN) || !strings.Contains(err.Error(), c.remark) {
			t.Errorf("recall refused with NO_PERMISSION %q: %v; want it to name %q and the broker's words, not %q", c.remark, err, c.want, c.wantN)
		}
	}
}
