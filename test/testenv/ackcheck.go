package testenv

import (
	"context"
	"fmt"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc"
)

// The official Go client's SimpleConsumer.Ack returns an error only when
// the call fails: it returns nil whatever status the proxy answers, so a
// test's `if err := c.Ack(...); err != nil` could not see an ack the proxy
// refused (the message then came back as a duplicate nothing explained).
// The consumers NewSimpleConsumer returns mark their acks' contexts, and an
// interceptor on the client's connections turns a refusal of a marked ack
// into the error Ack returns. Unmarked calls (every other client and
// request) pass through unchanged.

// checkedAck marks the context of an ack whose status is checked.
type checkedAck struct{}

func init() {
	newRPCClient := rmq.NewRpcClient
	rmq.NewRpcClient = func(target string, opts ...rmq.RpcClientOption) (rmq.RpcClient, error) {
		return newRPCClient(target, append(opts, rmq.WithRpcClientConnOption(rmq.WithDialOptions(grpc.WithChainUnaryInterceptor(ackStatusError))))...)
	}
}

// ackStatusError is a gRPC client interceptor: a marked AckMessage
// answered with a status other than OK (for the request or an entry)
// fails with an error saying it.
func ackStatusError(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
		return err
	}
	r, ok := reply.(*v2.AckMessageResponse)
	if !ok || ctx.Value(checkedAck{}) == nil {
		return nil
	}
	st := r.GetStatus()
	for _, e := range r.GetEntries() {
		if e.GetStatus().GetCode() != v2.Code_OK {
			st = e.GetStatus()
		}
	}
	if st.GetCode() != v2.Code_OK {
		return fmt.Errorf("the proxy refused the ack: %v %s", st.GetCode(), st.GetMessage())
	}
	return nil
}

// checkedConsumer is a simple consumer whose Ack fails when the proxy
// refuses the ack.
type checkedConsumer struct{ rmq.SimpleConsumer }

func (c checkedConsumer) Ack(ctx context.Context, m *rmq.MessageView) error {
	return c.SimpleConsumer.Ack(context.WithValue(ctx, checkedAck{}, true), m)
}

// CheckedAcks returns c with an Ack that fails when the proxy refuses the
// ack, as [NewSimpleConsumer]'s consumers do, for a simple consumer a test
// builds itself (with credentials, say).
func CheckedAcks(c rmq.SimpleConsumer) rmq.SimpleConsumer { return checkedConsumer{c} }
