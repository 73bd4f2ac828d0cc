package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// brokerAnswer is the broker's answer to one CONSUME_MESSAGE_DIRECTLY.
type brokerAnswer struct {
	Code   int32
	Remark string
	Result remoting.ConsumeMessageDirectlyResult
	Err    string // the request could not be made
}

// brokerVerifier fronts the proxy's admin API for the Java verify program
// in the cluster target: each verify request the program makes goes to the
// admin API as before, and then, as mqadmin queryMsgById -g GROUP -d
// CLIENT does, to the broker as a CONSUME_MESSAGE_DIRECTLY naming the
// proxy as the client (the broker knows it as the group's one client) and
// the message by its offset id. The broker relays it to the proxy, the
// proxy to the program's push consumer as a VerifyMessageCommand; the
// broker's answers are recorded by message id. Everything else is passed
// to the admin API.
type brokerVerifier struct {
	Addr string

	t          *testing.T
	brokerAddr string
	group      string
	rc         *client.Client

	mu      sync.Mutex
	answers map[string]brokerAnswer // message id → answer
}

func startBrokerVerifier(t *testing.T, p *testenv.Proxy, group string) *brokerVerifier {
	t.Helper()
	_, broker := testenv.ClusterConfig(t)
	v := &brokerVerifier{t: t, brokerAddr: broker.Addr, group: group, rc: client.New(client.Config{}), answers: map[string]brokerAnswer{}}
	t.Cleanup(func() { _ = v.rc.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v.Addr = ln.Addr().String()
	admin := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: p.AdminAddr()})
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/verify") {
			admin.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req struct{ Topic, MessageID string }
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		admin.ServeHTTP(w, r) // the program reads the admin API's answer
		a := v.consumeDirectly(r.Context(), req.Topic, req.MessageID)
		v.mu.Lock()
		v.answers[req.MessageID] = a
		v.mu.Unlock()
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return v
}

// answer returns the broker's answer for a message id.
func (v *brokerVerifier) answer(id string) (brokerAnswer, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	a, ok := v.answers[id]
	return a, ok
}

// consumeDirectly finds the proxy's client id and the message's offset id
// at the broker, then sends it CONSUME_MESSAGE_DIRECTLY.
func (v *brokerVerifier) consumeDirectly(ctx context.Context, topic, id string) brokerAnswer {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	call := func(ctx context.Context, code remoting.RequestCode, h remoting.Header) (*remoting.Command, error) {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		return v.rc.Invoke(cctx, v.brokerAddr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
	}
	proxyID, err := testenv.SoleGroupClient(ctx, call, v.group)
	if err != nil {
		return brokerAnswer{Err: err.Error()}
	}
	offsetID, err := testenv.MessageOffsetID(ctx, call, topic, id)
	if err != nil {
		return brokerAnswer{Err: err.Error()}
	}
	resp, err := call(ctx, remoting.RequestConsumeMessageDirectly, &remoting.ConsumeMessageDirectlyRequestHeader{
		ConsumerGroup: v.group, ClientID: proxyID, MsgID: offsetID, Topic: topic})
	if err != nil {
		return brokerAnswer{Err: err.Error()}
	}
	a := brokerAnswer{Code: resp.Code, Remark: resp.Remark}
	if resp.Code == int32(remoting.ResponseSuccess) {
		if err := remoting.DecodeJSONBody(resp.Body, &a.Result); err != nil {
			a.Err = fmt.Sprintf("%v: %s", err, resp.Body)
		}
	}
	return a
}
