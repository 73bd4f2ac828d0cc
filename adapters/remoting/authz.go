package remoting

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rmqproxy/rmqproxy/domain"
)

// fieldUniqueKeyQuery is added by old clients after signing; upstream
// leaves it out of the signed content for requests of version ≤ V4_9_3.
const fieldUniqueKeyQuery = "_UNIQUE_KEY_QUERY"

// versionV4_9_3 is MQVersion.Version.V4_9_3's ordinal.
const versionV4_9_3 = 399

// Credential faults, for the audit log (the same reasons as gRPC's).
const (
	FaultMissingCredentials = "missing_credentials"
	FaultMalformed          = "malformed_authorization"
)

// RequestCredentials reads the classic ACL credentials of a request, as an
// ingress verifies them: the AccessKey, the content the client signed (the
// values of every ext field except Signature, sorted by key in Java order,
// then the body; _UNIQUE_KEY_QUERY is left out for requests of version
// ≤ 399, whose clients added it after signing) and the 20 signature bytes.
// fault is set when the request carries no AccessKey or malformed ones:
// a Signature that is not base64 of 20 bytes, or an ext field key outside
// ASCII (where Go's and Java's orders could differ).
func RequestCredentials(cmd *Command) (accessKey string, content, signature []byte, fault string) {
	ak, ok := cmd.Fields.Get(FieldAccessKey)
	if !ok || ak == "" {
		return "", nil, nil, FaultMissingCredentials
	}
	sig, err := base64.StdEncoding.DecodeString(cmd.Fields.Value(FieldSignature))
	if err != nil || len(sig) != sha1.Size || domain.ValidateUserName(ak) != nil {
		return clipKey(ak), nil, nil, FaultMalformed
	}
	for _, kv := range cmd.Fields {
		for j := 0; j < len(kv.Key); j++ {
			if kv.Key[j] >= 0x80 {
				return ak, nil, nil, FaultMalformed
			}
		}
	}
	skipUnique := cmd.Version <= versionV4_9_3
	// ASCII keys: byte order is Java's order.
	idx := signedOrder(cmd.Fields, func(key string) bool {
		return key == FieldSignature || skipUnique && key == fieldUniqueKeyQuery
	}, strings.Compare)
	content = appendSigned(nil, cmd.Fields, idx, cmd.Body)
	return ak, content, sig, ""
}

func clipKey(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

// VerifySignature reports whether signature is HMAC-SHA1(secret, content),
// in constant time.
func VerifySignature(secret, content, signature []byte) bool {
	m := hmac.New(sha1.New, secret)
	m.Write(content)
	return hmac.Equal(m.Sum(nil), signature)
}

// Op names a request code for the audit log: "remoting:310".
func Op(code RequestCode) string { return "remoting:" + strconv.Itoa(int(code)) }

// AccessOf is the one table of what each Remoting request code needs
// (docs/security.md §4.7), for the Remoting ingress: the accesses, all of
// which must be allowed, from the request's ext fields (and body for
// heartbeats and queue locks). Names are taken as sent (namespaced names
// arrive namespaced). known is false for request codes the ingress does
// not serve or the table does not map: they must be refused.
func AccessOf(cmd *Command, source netip.Addr) (reqs []domain.AccessRequest, known bool, err error) {
	l := domain.AccessRequests{SourceIP: source}
	f := cmd.Fields
	topic := func(key string, acts domain.Action) { l.AddTopic(f.Value(key), acts) }
	group := func(key string, acts domain.Action) { l.Add(domain.GroupResource(f.Value(key)), acts) }
	const sub = domain.ActionSub
	switch RequestCode(cmd.Code) {
	case RequestSendMessage:
		topic("topic", domain.ActionPub)
	case RequestSendMessageV2, RequestSendBatchMessage:
		topic("b", domain.ActionPub)
	case RequestEndTransaction, RequestCheckTransactionState, RequestRecallMessage:
		if f.Value("topic") == "" {
			return nil, true, domain.Errorf(domain.ReasonBadRequest, "the request names no topic")
		}
		topic("topic", domain.ActionPub)
	case RequestPullMessage, RequestPopMessage, RequestPeekMessage, RequestAckMessage, RequestChangeMessageInvisibletime, RequestNotification:
		group("consumerGroup", sub)
		topic("topic", sub)
	case RequestPollingInfo:
		group("consumerGroup", domain.ActionGet)
		topic("topic", domain.ActionGet)
	case RequestConsumerSendMsgBack:
		group("group", sub)
	case RequestUnregisterClient:
		if f.Value("consumerGroup") != "" {
			group("consumerGroup", sub)
		}
	case RequestGetConsumerListByGroup:
		group("consumerGroup", sub|domain.ActionGet)
	case RequestQueryConsumerOffset:
		group("consumerGroup", sub|domain.ActionGet)
		topic("topic", sub|domain.ActionGet)
	case RequestUpdateConsumerOffset:
		group("consumerGroup", sub|domain.ActionUpdate)
		topic("topic", sub|domain.ActionUpdate)
	case RequestGetRouteinfoByTopic:
		topic("topic", domain.ActionPub|sub|domain.ActionGet)
	case RequestHeartBeat:
		var hb HeartbeatData
		if len(cmd.Body) > 0 {
			if err := DecodeJSONBody(cmd.Body, &hb); err != nil {
				return nil, true, domain.Wrap(domain.ReasonBadRequest, err, "the heartbeat body is not valid")
			}
		}
		for _, c := range hb.ConsumerDataSet {
			l.Add(domain.GroupResource(c.GroupName), sub)
			for _, s := range c.SubscriptionDataSet {
				if !domain.IsRetryTopic(s.Topic) {
					l.AddTopic(s.Topic, sub)
				}
			}
		}
	case RequestLockBatchMq, RequestUnlockBatchMq:
		var body LockBatchRequestBody
		if err := DecodeJSONBody(cmd.Body, &body); err != nil {
			return nil, true, domain.Wrap(domain.ReasonBadRequest, err, "the lock body is not valid")
		}
		l.Add(domain.GroupResource(body.ConsumerGroup), sub)
		for _, mq := range body.MQSet {
			if !domain.IsRetryTopic(mq.Topic) {
				l.AddTopic(mq.Topic, sub)
			}
		}
	case RequestQueryMessage:
		topic("topic", sub|domain.ActionGet)
	case RequestViewMessageById, RequestSearchOffsetByTimestamp, RequestGetMaxOffset, RequestGetMinOffset, RequestGetEarliestMsgStoretime, RequestGetTopicStatsInfo:
		topic("topic", domain.ActionGet)
	case RequestUpdateAndCreateTopic:
		topic("topic", domain.ActionCreate)
	case RequestDeleteTopicInBroker:
		topic("topic", domain.ActionDelete)
	case RequestDeleteSubscriptiongroup:
		group("groupName", domain.ActionDelete)
	case RequestGetConsumerConnectionList, RequestGetConsumeStats:
		group("consumerGroup", domain.ActionGet)
	case RequestGetBrokerClusterInfo:
		l.Add(domain.ClusterResource(""), domain.ActionGet)
	case RequestAuthCreateUser, RequestAuthUpdateUser, RequestAuthDeleteUser, RequestAuthCreateAcl, RequestAuthUpdateAcl, RequestAuthDeleteAcl:
		l.Add(domain.ClusterResource(""), domain.ActionUpdate)
	case RequestAuthGetUser, RequestAuthListUser, RequestAuthGetAcl, RequestAuthListAcl:
		l.Add(domain.ClusterResource(""), domain.ActionGet)
	default:
		return nil, false, nil
	}
	return l.List, true, nil
}
