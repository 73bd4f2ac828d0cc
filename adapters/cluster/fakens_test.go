package cluster

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// rw is the permission of a readable and writable topic (Perm* bits).
const rw = remoting.PermRead | remoting.PermWrite

// fakeNameServer is a fake NameServer of cluster DefaultCluster whose one
// master is b1: GET_BROKER_CLUSTER_INFO lists b1, GET_ROUTEINFO_BY_TOPIC
// routes every topic to it with queues queues (read and write) of
// permission perm. When b1 is the fake itself (a broker that is its own
// NameServer, see startB1) it also answers GET_TOPIC_CONFIG with the same
// queues and permission. Every other request goes to the fake's other
// answer (see answer).
type fakeNameServer struct {
	addr   string // the fake's own
	broker string // b1's address: addr when "" at start
	queues atomic.Int32
	perm   int32
	// hold, when set, is waited for by every route lookup.
	hold <-chan struct{}
	// listed and routed (both set at first), once cleared, make
	// GET_BROKER_CLUSTER_INFO list no master and GET_ROUTEINFO_BY_TOPIC
	// answer TOPIC_NOT_EXIST, as a NameServer that the brokers have not
	// registered with (yet) does.
	listed, routed         atomic.Bool
	listings, routeLookups atomic.Int32 // GET_BROKER_CLUSTER_INFO and GET_ROUTEINFO_BY_TOPIC requests
	// unroutedLookups route lookups to come answer TOPIC_NOT_EXIST however
	// routed is set: lookups the NameServer answered just before a
	// broker's registration.
	unroutedLookups atomic.Int32
}

// newFakeNameServer is a fakeNameServer, not started yet, whose b1 is at
// broker ("": the fake itself).
func newFakeNameServer(broker string, queues, perm int32) *fakeNameServer {
	f := &fakeNameServer{broker: broker, perm: perm}
	f.queues.Store(queues)
	f.listed.Store(true)
	f.routed.Store(true)
	return f
}

// startB1 starts a fake master broker b1 that is its own NameServer (see
// fakeNameServer), answering other requests with other (see answer).
func startB1(t testing.TB, queues, perm int32, other func(addr string, req, resp *remoting.Command) *remoting.Command) *fakeNameServer {
	t.Helper()
	return newFakeNameServer("", queues, perm).start(t, other)
}

// startNameServerOf starts a fake NameServer whose b1 is at broker, each
// topic one queue, readable and writable; it answers every other request
// SUCCESS.
func startNameServerOf(t testing.TB, broker string) *fakeNameServer {
	t.Helper()
	return newFakeNameServer(broker, 1, rw).start(t, nil)
}

// start serves f on a fake socket (see startFakeSocket) until the test
// ends, with other for the requests f leaves (see answer).
func (f *fakeNameServer) start(t testing.TB, other func(addr string, req, resp *remoting.Command) *remoting.Command) *fakeNameServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return f.serve(t, ln, other)
}

// serve is start on the connections ln accepts (a TLS listener: after its
// handshake).
func (f *fakeNameServer) serve(t testing.TB, ln net.Listener, other func(addr string, req, resp *remoting.Command) *remoting.Command) *fakeNameServer {
	t.Helper()
	f.addr = ln.Addr().String() // before the first request is read
	serveFakeSocket(t, ln, func(req *remoting.Command) *remoting.Command { return f.answer(req, other) })
	return f
}

// answer answers req as f, or, for a request f leaves, as other does,
// given f's address and a SUCCESS response to fill or replace (other nil:
// that response as it is).
func (f *fakeNameServer) answer(req *remoting.Command, other func(addr string, req, resp *remoting.Command) *remoting.Command) *remoting.Command {
	broker := f.broker
	if broker == "" {
		broker = f.addr
	}
	resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
	switch remoting.RequestCode(req.Code) {
	case remoting.RequestGetBrokerClusterInfo:
		f.listings.Add(1)
		if !f.listed.Load() {
			resp.Body, _ = remoting.EncodeJSONBody(remoting.ClusterInfo{})
		} else {
			resp.Body = oneBrokerCluster(broker)
		}
		return resp
	case remoting.RequestGetRouteinfoByTopic:
		f.routeLookups.Add(1)
		if f.hold != nil {
			<-f.hold
		}
		if !f.routed.Load() || f.unroutedLookups.Add(-1) >= 0 {
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic route info in name server for the topic: "+req.Fields.Value("topic"))
		}
		resp.Body = oneBrokerRoute(broker, f.queues.Load(), f.perm)
		return resp
	case remoting.RequestGetTopicConfig:
		if f.broker == "" {
			n := f.queues.Load()
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: req.Fields.Value("topic"), ReadQueueNums: n, WriteQueueNums: n, Perm: f.perm})
			return resp
		}
	}
	if other == nil {
		return resp
	}
	return other(f.addr, req, resp)
}

// oneBrokerCluster is a NameServer's GET_BROKER_CLUSTER_INFO body for a
// cluster of one master, b1 at addr.
func oneBrokerCluster(addr string) []byte {
	body, _ := remoting.EncodeJSONBody(remoting.ClusterInfo{
		BrokerAddrTable:  map[string]remoting.BrokerData{"b1": {Cluster: "DefaultCluster", BrokerName: "b1", BrokerAddrs: map[int64]string{0: addr}}},
		ClusterAddrTable: map[string][]string{"DefaultCluster": {"b1"}}})
	return body
}

// oneBrokerRoute is the route of a topic with queues queues of permission
// perm (Perm* bits), all on master b1 at addr, of DefaultCluster.
func oneBrokerRoute(addr string, queues, perm int32) []byte {
	body, _ := remoting.EncodeJSONBody(remoting.TopicRouteData{
		QueueDatas:  []remoting.QueueData{{BrokerName: "b1", ReadQueueNums: queues, WriteQueueNums: queues, Perm: perm}},
		BrokerDatas: []remoting.BrokerData{{Cluster: "DefaultCluster", BrokerName: "b1", BrokerAddrs: map[int64]string{0: addr}}},
	})
	return body
}

// twoBrokerCluster is oneBrokerCluster for masters b1 at addr1 and b2 at
// addr2.
func twoBrokerCluster(addr1, addr2 string) []byte {
	body, _ := remoting.EncodeJSONBody(remoting.ClusterInfo{
		BrokerAddrTable: map[string]remoting.BrokerData{
			"b1": {Cluster: "DefaultCluster", BrokerName: "b1", BrokerAddrs: map[int64]string{0: addr1}},
			"b2": {Cluster: "DefaultCluster", BrokerName: "b2", BrokerAddrs: map[int64]string{0: addr2}}},
		ClusterAddrTable: map[string][]string{"DefaultCluster": {"b1", "b2"}}})
	return body
}

// startTwoMasters starts masters b1 and b2 of DefaultCluster on a socket
// each, both also NameServers listing the two: every request but
// GET_BROKER_CLUSTER_INFO goes to answer, given the broker's name and a
// SUCCESS response to fill or replace. It returns b1's address.
func startTwoMasters(t *testing.T, answer func(broker string, req, resp *remoting.Command) *remoting.Command) string {
	t.Helper()
	var lns [2]net.Listener
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	a1, a2 := lns[0].Addr().String(), lns[1].Addr().String()
	for i, ln := range lns {
		broker := fmt.Sprintf("b%d", i+1)
		serveFakeSocket(t, ln, func(req *remoting.Command) *remoting.Command {
			resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
			if remoting.RequestCode(req.Code) == remoting.RequestGetBrokerClusterInfo {
				resp.Body = twoBrokerCluster(a1, a2)
				return resp
			}
			return answer(broker, req, resp)
		})
	}
	return a1
}
