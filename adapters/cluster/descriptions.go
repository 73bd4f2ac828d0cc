package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Topic and consumer group descriptions have no place in a broker's
// topic or group configuration, so cluster mode keeps them in the
// NameServers' KV config: one namespace per kind and cluster (the prefix
// followed by cluster.clusterName), the topic or group name as the key,
// the description as the value, untouched. Every instance of rmqproxy in
// front of the cluster reads the same entries, so descriptions stay
// cluster-wide and rmqproxy stateless. A NameServer does not share its KV
// config with the others, so writes go to every configured NameServer (as
// upstream's admin tools do) and reads to the first that answers.
const (
	topicDescriptions = "rmqproxy.topic.description."
	groupDescriptions = "rmqproxy.group.description."
)

// descriptions reads the descriptions of one kind (topicDescriptions or
// groupDescriptions) from the first NameServer that answers; a
// NameServer that never stored one answers with none.
func (b *Broker) descriptions(ctx context.Context, kind string) (map[string]string, error) {
	ns := kind + b.cfg.ClusterName
	resp, err := b.callNameServer(ctx, func() *remoting.Command {
		return remoting.NewRequest(remoting.RequestGetKvlistByNamespace,
			remoting.EncodeHeader(&remoting.KVNamespaceRequestHeader{Namespace: ns}), nil)
	}, remoting.ResponseSuccess, remoting.ResponseQueryNotFound)
	if err != nil {
		return nil, domain.Wrap(domain.ReasonOf(mapError(err)), err,
			fmt.Sprintf("the descriptions are kept by the NameServers (KV config namespace %s), which could not be read: %v", ns, err))
	}
	if resp.Code == int32(remoting.ResponseQueryNotFound) {
		return nil, nil
	}
	var kv remoting.KVTable
	if err := remoting.DecodeJSONBody(resp.Body, &kv); err != nil {
		return nil, domain.Wrap(domain.ReasonBrokerError, err, "the NameServer's KV config namespace "+ns+" could not be decoded")
	}
	return kv.Table, nil
}

// storeDescription writes one description to every NameServer: PUT_KV_CONFIG,
// or DELETE_KV_CONFIG for an empty one. It tries each NameServer once and
// returns the failures, each naming its NameServer, joined in a
// *storeError.
func (b *Broker) storeDescription(ctx context.Context, kind, name, desc string) error {
	h := &remoting.KVConfigRequestHeader{Namespace: kind + b.cfg.ClusterName, Key: name, Value: desc}
	code := remoting.RequestPutKvConfig
	if desc == "" {
		code = remoting.RequestDeleteKvConfig
	}
	se := &storeError{total: len(b.cfg.NameServers)}
	for _, addr := range b.cfg.NameServers {
		resp, err := b.invoke(ctx, addr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
		if err == nil {
			err = remoting.Expect(resp)
		}
		if err != nil {
			se.failed = append(se.failed, fmt.Errorf("NameServer %s: %w", addr, err))
		}
	}
	if len(se.failed) == 0 {
		return nil
	}
	return se
}

// storeError says which NameServers did not take a description.
type storeError struct {
	total  int
	failed []error
}

func (e *storeError) Error() string {
	msgs := make([]string, len(e.failed))
	for i, err := range e.failed {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("%d of %d NameServers failed: %s", len(e.failed), e.total, strings.Join(msgs, "; "))
}

func (e *storeError) Unwrap() []error { return e.failed }

// descriptionFailed reports, after a topic or group change took effect
// (what: "topic \"x\" was created"), that its description was not stored
// on every NameServer, and what to do about it (advice). Its reason is the
// first failure's (UNAVAILABLE for a NameServer that cannot be reached).
func descriptionFailed(what string, err error, advice string) error {
	var se *storeError
	reason := domain.ReasonBrokerError
	if errors.As(err, &se) && len(se.failed) > 0 {
		reason = domain.ReasonOf(mapError(se.failed[0]))
	}
	return domain.Wrap(reason, err, fmt.Sprintf("%s, but its description was not stored on every NameServer (%v); %s", what, err, advice))
}
