// Package cluster is rmqproxy's broker side in cluster mode: it implements
// the broker ports ([ports.Broker], [ports.Metadata], [ports.Admin],
// [ports.Transactions], [ports.Recaller], [ports.Offsets] and
// [ports.ClientTracker]) with Remoting requests to a real Apache RocketMQ
// cluster (NameServers and Brokers), so that the same application layer and
// gRPC adapter serve clients in front of it.
//
// The adapter keeps no state a client depends on: receipt handles are the
// brokers' own pop checkpoints plus the commit-log offset (RocketMQ's
// nine-field form), transaction ids carry the broker name and the half
// message's offsets, and recall handles are the brokers'. A handle minted
// through one rmqproxy instance is therefore accepted by any other in front
// of the same cluster. What it does keep is a cache: topic routes and topic
// and group configurations (refreshed after cluster.routeTTL, and at once
// after a broker failure), the broker table of the cluster, and the set of
// clients connected to this instance, which it registers with every broker
// by heartbeat (producer group = topic name, as the Apache proxy does, so
// that brokers send transaction check-backs here; consumer groups with
// their subscriptions).
//
// Every broker answer becomes a domain error in one function ([mapError]),
// so that the gRPC adapter's one mapping gives clients the codes the Apache
// proxy gives for the same broker answer. A broker that fails a call is
// avoided for cluster.isolation by sends and receives that may choose
// another one; a send is retried on another broker only when the failed
// attempt cannot have stored anything (a request the Remoting client never
// wrote: no connection could be made, or the connection broke or the
// request timeout passed while it waited for a connection or an in-flight
// slot; or a broker that answered "busy"), never after a timeout or a
// broken connection once the request may have been written, so that
// retries never duplicate a message.
//
// Under load the adapter sends fewer, larger requests without delaying a
// lone one: concurrent acks to a broker, and concurrent sends of single
// normal messages to one topic on a broker, are coalesced like a group
// commit into BATCH_ACK_MESSAGE and SEND_BATCH_MESSAGE (ackline.go,
// sendline.go, package coalesce).
//
// What it does not do: it creates nothing on its own (topics and groups are
// created by the admin use cases, or by the brokers' auto-creation), it
// polls nothing (long polling happens in the broker: pop and pull carry the
// client's polling time), and it never decompresses a gzip body a gRPC
// producer compressed.
package cluster
