package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Broker is the cluster adapter: every broker port over Remoting. Use
// [New], then Start; Close stops it.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	clock ports.Clock
	rpc   *client.Client
	// id is how this proxy names itself to the brokers (heartbeats).
	id string

	// nsCur is the index of the NameServer that answered last.
	nsCur atomic.Int32
	// nsFaults remembers the NameServers that did not answer in time, or
	// could not be connected to in time (by address), for
	// cluster.isolation: they are not asked again for what another
	// NameServer answered lacking.
	nsFaults *faults

	meta    *metaCache
	faults  *faults
	clients *clientSet

	checkMu sync.RWMutex
	check   ports.TransactionCheckHandler
	// ended remembers the transactions this instance ended (see ended.go).
	ended endedTransactions
	// checked remembers the half message copies check-backs named (see
	// checked.go).
	checked checkedCopies
	// runningInfo answers brokers' GET_CONSUMER_RUNNING_INFO; nil until
	// the application sets it (see runninginfo.go).
	runningInfo atomic.Pointer[ports.ConsumerRunningInfoHandler]
	// consumeDirectly relays brokers' CONSUME_MESSAGE_DIRECTLY to a
	// consumer; nil until the application sets it (see consumedirect.go).
	consumeDirectly atomic.Pointer[ports.ConsumeDirectlyHandler]

	// batchRefusals says when a broker last refused a BATCH_ACK_MESSAGE
	// (see batchack.go), to warn once a minute per broker.
	batchRefusals refusals
	// ackLines coalesces concurrent acks per broker (see ackline.go).
	ackLines ackLines
	// sendLines coalesces concurrent sends per broker and topic (see
	// sendline.go).
	sendLines sendLines

	// routeWait bounds topic create's and update's wait for the route
	// (routeWait; tests shorten it).
	routeWait time.Duration

	// popTurns rotates receives that name no broker over the brokers.
	popTurns atomic.Uint64
	// latePop is releaseLatePop as a func value, made once: each receive
	// passes it to its POP_MESSAGE (a method value or closure made per
	// call is an allocation per receive).
	latePop client.LateHandler

	// readyAt is when a readiness probe last passed (UnixNano), 0 after a
	// broker's transport failure (see Ready).
	readyAt atomic.Int64
	// brokerAnsweredAt is when a broker last answered a request (UnixNano,
	// kept to the second), 0 after a broker's transport failure: traffic
	// that a broker answers stands in for the readiness probe's request
	// to it (see Ready).
	brokerAnsweredAt atomic.Int64

	// Lifecycle of the heartbeat loop (see Start and Close).
	stop     context.CancelFunc
	loopDone chan struct{}
	kick     chan struct{} // bounded (1): a pending "heartbeat now"
}

// New returns a cluster adapter for cfg; it dials nothing until Start.
func New(cfg Config, log *slog.Logger, clock ports.Clock) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = ports.SystemClock{}
	}
	b := &Broker{cfg: cfg, log: log.With("component", "cluster"), clock: clock, id: proxyClientID(),
		faults: newFaults(cfg.Isolation), nsFaults: newFaults(cfg.Isolation), clients: newClientSet(), kick: make(chan struct{}, 1),
		ackLines: ackLines{Limits: ackLimits}, sendLines: sendLines{Limits: sendLimits}, routeWait: routeWait}
	b.meta = newMetaCache(b)
	b.latePop = b.releaseLatePop
	ccfg := client.Config{
		ConnsPerAddr: cfg.ConnectionsPerBroker,
		MaxInFlight:  cfg.MaxInFlight,
		DialTimeout:  cfg.DialTimeout,
		// A pop answer holds up to maxPopBatch messages, one of each queue
		// of the topic where the messages are large (the broker adds a
		// second one of a queue only within 256 KiB), and a message is at
		// most as large as a frame a broker reads: at the default 16 MiB
		// the answer to a receive of 32 messages of 4 MiB was dropped with
		// the connection, its messages left invisible.
		MaxReadFrameSize: maxPopBatch * remoting.DefaultMaxFrameSize,
		Logger:           log, // the client adds component=remoting (slog.With would repeat the key)
		Handlers: map[remoting.RequestCode]client.Handler{
			remoting.RequestCheckTransactionState:  b.onCheckTransaction,
			remoting.RequestGetConsumerRunningInfo: b.onConsumerRunningInfo,
			remoting.RequestConsumeMessageDirectly: b.onConsumeDirectly,
			// Pop consumers need no rebalancing: the notice is dropped.
			remoting.RequestNotifyConsumerIdsChanged: func(context.Context, string, *remoting.Command) *remoting.Command { return nil },
		},
	}
	if cfg.TLS.Enabled {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		ccfg.TLS = tc
	}
	if cfg.ACL.AccessKey != "" {
		creds := remoting.Credentials{AccessKey: cfg.ACL.AccessKey, SecretKey: cfg.ACL.SecretKey}
		ccfg.Sign = creds.Sign
	}
	b.rpc = client.New(ccfg)
	return b, nil
}

func tlsConfig(c BrokerTLS) (*tls.Config, error) {
	minVersion, err := tlspolicy.ParseMinVersion(c.MinVersion)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.minVersion %w", err)
	}
	suites, err := tlspolicy.ParseCipherSuites(c.CipherSuites)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.cipherSuites %w", err)
	}
	tc := &tls.Config{MinVersion: minVersion, CipherSuites: suites, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // an explicit, documented test setting
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the cause; the path is named once, quoted
			}
			return nil, fmt.Errorf("cluster.tls.caFile %q: %w", c.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.tls.caFile %q holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// proxyClientID names this process to the brokers, unique per start so
// that two rmqproxy instances never share a registration.
func proxyClientID() string {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("rmqproxy@%s@%d@%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// Start waits (up to Config.StartTimeout, or ctx) for a NameServer to
// answer, reads the cluster's brokers, and starts the heartbeat loop. It
// fails with a message naming the NameServers when none answers, having
// closed the connections it opened.
func (b *Broker) Start(ctx context.Context) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, b.cfg.StartTimeout)
	defer cancel()
	var lastErr error
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := b.meta.refreshCluster(ctx)
		if err == nil {
			break
		}
		// The attempt the wait's end cut short failed with that end
		// alone ("the broker did not answer in time"), which says nothing
		// of the NameServers and the message below says already: the
		// cause kept is the last attempt's that ended by itself.
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			lastErr = err
			var de *domain.Error
			if errors.As(err, &de) && de.Err != nil && transportFailure(err) {
				lastErr = de.Err // the message below says it of the NameServers already
			}
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("no attempt ended before the wait did")
			}
			// fx does not stop a module whose start failed: the
			// connections opened to the NameServers close here.
			_ = b.rpc.Close()
			if err := parent.Err(); err != nil { // the start was cancelled or ran out of time
				return fmt.Errorf("cluster: stopped waiting for a NameServer of cluster.nameServers %v to answer (last error: %v): %w",
					b.cfg.NameServers, lastErr, err)
			}
			check := "check the addresses and that the NameServers run"
			if b.cfg.TLS.Enabled {
				check += ", with TLS (cluster.tls.enabled is on)"
				if v, _ := tlspolicy.ParseMinVersion(b.cfg.TLS.MinVersion); v == tls.VersionTLS13 {
					check += " and, as cluster.tls.minVersion is 1.3, with TLS 1.3"
				}
			}
			return fmt.Errorf("cluster: no NameServer of cluster.nameServers %v answered within %v (cluster.startTimeout): %w; %s",
				b.cfg.NameServers, b.cfg.StartTimeout, lastErr, check)
		case <-tick.C:
		}
	}
	if v := b.meta.currentView(); v != nil && len(v.masterList()) == 0 {
		b.log.Warn("the NameServers know no master broker of the cluster yet; rmqproxy is not ready until one registers",
			slog.String("cluster", b.cfg.ClusterName), slog.String("reason", v.noMaster(b.cfg.ClusterName)))
	}
	loopCtx, stop := context.WithCancel(context.Background())
	b.stop = stop
	b.loopDone = make(chan struct{})
	go func() {
		defer close(b.loopDone)
		b.heartbeatLoop(loopCtx)
	}()
	return nil
}

// Close stops the heartbeat loop, unregisters this proxy's groups from the
// brokers (best effort, bounded by ctx), waits within ctx's deadline for
// the brokers to answer the pops of receives that gave up (see
// awaitAbandonedPops), and closes every connection.
func (b *Broker) Close(ctx context.Context) error {
	if b.stop != nil {
		b.stop()
		select {
		case <-b.loopDone:
		case <-ctx.Done():
		}
		b.unregisterAll(ctx)
	}
	b.awaitAbandonedPops(ctx)
	err := b.rpc.Close()
	b.meta.close()
	b.log.Info("cluster adapter closed")
	return err
}

// closeReserve is what Close keeps of its context's time for closing the
// connections once it stops waiting for abandoned pops.
const closeReserve = time.Second

// awaitAbandonedPops waits, until closeReserve before ctx's deadline (not
// at all without one), for
// the brokers to answer the POP_MESSAGEs of receives that gave up, above
// all those rmqproxy's stop ended at once. A broker holds such a pop until
// its polling time ends (up to messaging.consumer.maxLongPolling) and
// pops the next message that arrives meanwhile: its answer, released by
// the late handler within a second, would reach a closed connection and
// the message would stay invisible for its whole invisible time.
func (b *Broker) awaitAbandonedPops(ctx context.Context) {
	n := b.rpc.AbandonedPolls()
	dl, ok := ctx.Deadline()
	if n == 0 || !ok {
		return
	}
	ctx, cancel := context.WithDeadline(ctx, dl.Add(-min(closeReserve, time.Until(dl)/2)))
	defer cancel()
	b.log.LogAttrs(ctx, slog.LevelInfo, "waiting for the brokers to answer the pops of receives that ended, so that the messages they take are made visible again at once",
		slog.Int("pops", n))
	if left := b.rpc.AwaitAbandonedPolls(ctx); left > 0 {
		b.log.LogAttrs(ctx, slog.LevelInfo, "closing with pops of receives that ended still held by the brokers; a message one of them takes from now on stays invisible for its invisible time",
			slog.Int("pops", left))
	}
}

// readyReuse is how long a passed readiness probe answers for the next
// ones. The gRPC health service asks every second and orchestrators ask
// again; each probe costs a NameServer a listing of the whole cluster and
// a broker its runtime info (disk and store statistics), from every
// rmqproxy instance. A broker's transport failure ends the reuse at once.
const readyReuse = 5 * time.Second

// Ready reports whether a NameServer answers and at least one master
// broker of the cluster answers; it is the adapter's readiness check. A
// probe that passed is reused for readyReuse, unless a broker failed since.
// While no NameServer answers but the cluster view last read (and the
// routes cached with it) still serve, for maxStale after it was read, and
// a master broker answers, it returns a *CachedRoutesError: the instance
// serves, degraded (every instance shares the NameServers, and taking
// them all out of a load balancer would turn the outage of the
// NameServers into one of the whole service).
func (b *Broker) Ready(ctx context.Context) error {
	now := b.clock.Now()
	if recent(b.readyAt.Load(), now) {
		return nil
	}
	if err := b.probe(ctx, now); err != nil {
		return err
	}
	b.readyAt.Store(now.UnixNano())
	return nil
}

// CachedRoutesError is [Broker.Ready]'s answer while no NameServer
// answers (Err says how each failed) but the cluster view read at Read
// and the routes cached with it still serve, and a master broker answers:
// the instance serves, degraded, until maxStale after Read.
type CachedRoutesError struct {
	Read time.Time
	Age  time.Duration
	Err  error
}

func (e *CachedRoutesError) Error() string {
	return fmt.Sprintf("%v; serving the brokers and routes cached %v ago, for up to %v after they were read",
		domain.MessageOf(e.Err), e.Age.Round(time.Second), maxStale)
}

func (e *CachedRoutesError) Unwrap() error { return e.Err }

// recent reports whether the UnixNano stamp at (0: never) lies within
// readyReuse before now.
func recent(at int64, now time.Time) bool {
	return at != 0 && now.Sub(time.Unix(0, at)) < readyReuse
}

// shareOf returns a context ending after 1/n of the time ctx has left, or
// ctx itself (with a no-op cancel) when it has no deadline or n ≤ 1.
func shareOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Until(d)/time.Duration(n))
}

// probe asks the NameServers for the cluster and its masters, one after
// the other (each within its share of ctx's time), for their runtime info,
// until one answers. When a broker
// answered a request within readyReuse, the NameServer's answer is enough:
// under load a broker can take seconds to gather its runtime info (store
// and disk statistics) while it answers sends and pops at once, and
// readiness must not fail an instance that is serving.
func (b *Broker) probe(ctx context.Context, now time.Time) error {
	// The NameServers get half the probe's time: hanging ones (packets
	// dropped, a hung process) took all of it, and a timeout was not taken
	// for their failure, so readiness failed where, with NameServers that
	// refuse connections, the instance serves from its cache.
	nsCtx, cancel := shareOf(ctx, 2)
	info, err := b.meta.refreshCluster(nsCtx)
	nsTimedOut := err != nil && nsCtx.Err() != nil && ctx.Err() == nil
	cancel()
	if nsTimedOut {
		err = domain.Wrap(domain.ReasonTimeout, err, fmt.Sprintf(
			"no NameServer of cluster.nameServers %v answered within half the readiness check's time; check that they run and that rmqproxy can reach them", b.cfg.NameServers))
	}
	passed := error(nil) // what a probe whose broker answers returns
	if err != nil {
		v := b.meta.currentView()
		if v == nil || now.Sub(v.fetched) >= maxStale || !(transportFailure(err) || nsTimedOut) {
			return err
		}
		info, passed = v, &CachedRoutesError{Read: v.fetched, Age: now.Sub(v.fetched), Err: err}
	}
	masters := info.masterList()
	if len(masters) == 0 {
		// A NameServer that knows no master (restarted, brokers not
		// registered again yet) routes no topic: not ready, however
		// recently a broker answered.
		return errors.New(info.noMaster(b.cfg.ClusterName))
	}
	if recent(b.brokerAnsweredAt.Load(), now) {
		return passed
	}
	// A master that stopped answering must not take all the probe's time
	// (the health check's): each gets its share of what is left, and one
	// isolated after a failure is asked last. A timeout here isolates
	// nothing: a loaded broker can be slow to gather its runtime info.
	isolatedLast(b, masters, func(m master) string { return m.name })
	var lastErr error
	for i, m := range masters {
		req := remoting.NewRequest(remoting.RequestGetBrokerRuntimeInfo, nil, nil)
		mctx, cancel := shareOf(ctx, len(masters)-i)
		resp, err := b.invoke(mctx, m.addr, req)
		cancel()
		if err == nil {
			err = remoting.Expect(resp)
		}
		if err == nil {
			return passed
		}
		lastErr = fmt.Errorf("broker %s (%s): %w", m.name, m.addr, err)
	}
	return lastErr
}

// invoke sends one request, bounded by ctx and Config.RequestTimeout: as
// with bounded(ctx, RequestTimeout), but the client bounds the call with
// a timer it reuses (client.InvokeWithin), where a derived context cost a
// timer and four allocations per request whose ctx did not end sooner.
func (b *Broker) invoke(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	return b.invokeWithin(ctx, addr, req, b.cfg.RequestTimeout)
}

// invokeWithin is invoke bounded by timeout instead of
// Config.RequestTimeout.
func (b *Broker) invokeWithin(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration) (*remoting.Command, error) {
	resp, err := b.rpc.InvokeWithin(ctx, addr, req, timeout)
	if err == nil {
		b.answered(addr)
	}
	return resp, err
}

// poll sends a long poll (POP_MESSAGE, PULL_MESSAGE with suspend), bounded
// by ctx and timeout (a timer the client reuses, not a derived context;
// see client.InvokeLongPollWithin); an answer that comes after that goes
// to late, when not nil. Long polls take no in-flight slot of the
// connection (see client.InvokeLongPoll).
func (b *Broker) poll(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration, late client.LateHandler) (*remoting.Command, error) {
	resp, err := b.rpc.InvokeLongPollWithin(ctx, addr, req, timeout, late)
	if err == nil {
		b.answered(addr)
	}
	return resp, err
}

// answered records that addr answered a request, when addr is a broker's.
// The stamp is kept to the second, so that the hot path mostly only reads
// it.
func (b *Broker) answered(addr string) {
	if slices.Contains(b.cfg.NameServers, addr) {
		return
	}
	now := b.clock.Now().UnixNano()
	if now-b.brokerAnsweredAt.Load() >= int64(time.Second) {
		b.brokerAnsweredAt.Store(now)
	}
}

// bounded returns ctx ending within timeout: ctx itself when it ends sooner
// anyway (with a no-op cancel), a derived context otherwise.
func bounded(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// call sends a request built from code, header and body to addr and
// returns the answer when its code is one of ok (SUCCESS when none);
// otherwise a *remoting.ResponseError or *client.Error.
func (b *Broker) call(ctx context.Context, addr string, code remoting.RequestCode, h remoting.Header, body []byte, ok ...remoting.ResponseCode) (*remoting.Command, error) {
	resp, err := b.invoke(ctx, addr, newRequest(code, h, body))
	if err != nil {
		return nil, err
	}
	return resp, expect(code, resp, ok...)
}

// expect is remoting.Expect, with the request's code in the error.
func expect(code remoting.RequestCode, resp *remoting.Command, ok ...remoting.ResponseCode) error {
	err := remoting.Expect(resp, ok...)
	if re, isRe := err.(*remoting.ResponseError); isRe {
		re.Request = code
	}
	return err
}

// callPinned is call for HEART_BEAT and UNREGISTER_CLIENT: always on the
// same connection to addr (see client.InvokePinned), so that a broker
// keeps this proxy's registrations on one connection, which the heartbeats
// renew and the unregistrations clear. Spread over the pool, a group
// unregistered on one connection stayed registered on the other until the
// broker's expiry (120 s), and then the broker closed that connection with
// whatever requests were in flight on it.
func (b *Broker) callPinned(ctx context.Context, addr string, code remoting.RequestCode, h remoting.Header, body []byte) error {
	ctx, cancel := bounded(ctx, b.cfg.RequestTimeout)
	defer cancel()
	resp, err := b.rpc.InvokePinned(ctx, addr, newRequest(code, h, body))
	if err != nil {
		return err
	}
	b.answered(addr)
	return expect(code, resp)
}

// newRequest builds a request from code, header (nil for none) and body.
func newRequest(code remoting.RequestCode, h remoting.Header, body []byte) *remoting.Command {
	if h == nil {
		return remoting.NewRequest(code, nil, body)
	}
	return remoting.NewHeaderRequest(code, h, body)
}

// callNameServer sends a request to the NameServers, starting with the one
// that answered last and failing over to the next on a transport failure
// (not on an answer). mk builds a fresh request per attempt.
func (b *Broker) callNameServer(ctx context.Context, mk func() *remoting.Command, ok ...remoting.ResponseCode) (*remoting.Command, error) {
	return b.askNameServers(ctx, mk, nil, ok...)
}

// nsVerdict is how askNameServers' caller judges a NameServer's answer.
type nsVerdict uint8

const (
	nsAnswered nsVerdict = iota // it holds what was asked for
	nsLacks                     // a proper answer without it: no such topic, no master of the cluster
	nsUnusable                  // an error code, or a body that does not decode
)

// askNameServers is callNameServer that also moves on from an answer that
// judge finds lacking what was asked for (a topic without a route, a
// cluster without a master) or unusable (an error code, a body that does
// not decode: a NameServer answering garbage, or the port of a broker or
// of another server listed among them by mistake), each NameServer asked
// at most once: a NameServer restarted within the brokers' registration
// interval (30 s) knows no broker while the others do. It returns the
// first answer that holds it; when none does, the first one lacking it,
// else the first one, as callNameServer would. The NameServer whose
// answer is returned is asked first next time. Once one answered lacking,
// the NameServers that failed to answer within cluster.isolation are not
// asked: a hung one made every lookup of a topic that does not exist
// (and every readiness probe while the cluster had no master) wait
// cluster.requestTimeout for it.
func (b *Broker) askNameServers(ctx context.Context, mk func() *remoting.Command, judge func(*remoting.Command) nsVerdict, ok ...remoting.ResponseCode) (*remoting.Command, error) {
	n := len(b.cfg.NameServers)
	start := int(b.nsCur.Load())
	var lastErr error
	var unreached []string
	type answer struct {
		resp *remoting.Command
		idx  int
		code remoting.RequestCode
	}
	var lacking, unusable *answer // the first answer of each kind
	for i := range n {
		idx := (start + i) % n
		addr := b.cfg.NameServers[idx]
		if (lacking != nil || unusable != nil) && b.nsFaults.isolated(addr, b.clock.Now()) {
			continue
		}
		req := mk()
		resp, err := b.invoke(ctx, addr, req)
		if err == nil {
			v := nsAnswered
			if judge != nil {
				v = judge(resp)
			}
			if v == nsAnswered {
				b.nsCur.Store(int32(idx))
				return resp, expect(remoting.RequestCode(req.Code), resp, ok...)
			}
			a := &answer{resp, idx, remoting.RequestCode(req.Code)}
			switch {
			case v == nsLacks && lacking == nil:
				lacking = a
			case v == nsUnusable && unusable == nil:
				unusable = a
			}
			if i < n-1 {
				b.log.LogAttrs(ctx, slog.LevelDebug, "a NameServer's answer lacks what was asked, or cannot be used; asking the next",
					slog.String("nameServer", b.cfg.NameServers[idx]), slog.Int("code", int(req.Code)), slog.Int("answer", int(resp.Code)))
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		lastErr = err
		var ce *client.Error
		retryable := errors.As(err, &ce) && ce.Retryable()
		if retryable {
			unreached = append(unreached, addr+": "+transportFailureText(ce.Kind))
			if ctx.Err() == nil && slow(ce) { // the NameServer's failure, not the caller's deadline
				b.nsFaults.mark(addr, b.clock.Now())
			}
		}
		if ctx.Err() != nil || !retryable {
			break
		}
	}
	if a := cmp.Or(lacking, unusable); a != nil {
		b.nsCur.Store(int32(a.idx))
		return a.resp, expect(a.code, a.resp, ok...)
	}
	if len(unreached) == 0 || !transportFailure(lastErr) {
		return nil, lastErr
	}
	// Said of the NameServers, not (as mapError would) of a broker: the
	// operator is to look at cluster.nameServers.
	return nil, domain.Wrap(domain.ReasonOf(mapError(lastErr)), lastErr, fmt.Sprintf(
		"no NameServer of cluster.nameServers answered (%s); retry, and check that they run and that rmqproxy can reach them",
		strings.Join(unreached, "; ")))
}

// slow reports whether a failed call took its time: no answer within the
// request timeout, or no connection within the dial timeout (a host that
// drops packets). A peer that refuses connections fails at once, and one
// that did may be back, with what another NameServer lacks.
func slow(ce *client.Error) bool {
	var ne net.Error
	return ce.Kind == client.KindTimeout || ce.Kind == client.KindDial && errors.As(ce.Err, &ne) && ne.Timeout()
}

// transportFailureText says what a retryable client.Error's kind means.
func transportFailureText(k client.Kind) string {
	switch k {
	case client.KindDial:
		return "cannot connect"
	case client.KindTimeout:
		return "no answer in time"
	case client.KindConnection:
		return "the connection broke"
	}
	return k.String()
}

// decodeHeader decodes resp's header into h, as a domain error when the
// broker's answer does not fit.
func decodeHeader(resp *remoting.Command, h remoting.Header) error {
	if err := h.DecodeFields(resp.Fields); err != nil {
		return headerError(err)
	}
	return nil
}

// headerError is the error of an answer whose header does not decode.
func headerError(err error) error {
	return domain.Wrap(domain.ReasonBrokerError, err, "the broker's answer could not be decoded")
}

// SetTransactionCheckHandler implements [ports.Transactions].
func (b *Broker) SetTransactionCheckHandler(h ports.TransactionCheckHandler) {
	b.checkMu.Lock()
	defer b.checkMu.Unlock()
	b.check = h
}

func (b *Broker) checkHandler() ports.TransactionCheckHandler {
	b.checkMu.RLock()
	defer b.checkMu.RUnlock()
	return b.check
}
