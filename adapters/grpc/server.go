package grpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/rmqproxy/rmqproxy/adapters/internal/certreload"
	"github.com/rmqproxy/rmqproxy/adapters/internal/handshake"
	"github.com/rmqproxy/rmqproxy/adapters/internal/listenhint"
	"github.com/rmqproxy/rmqproxy/ports"
)

// streamWorkers is how many goroutines serve requests (see NumStreamWorkers
// in NewServer): enough for a few hundred requests in flight, such as
// sends waiting for their fsync; idle ones cost a small stack each.
const streamWorkers = 256

// ListenerName is the gRPC port's value of the listener label of the TLS
// metrics.
const ListenerName = "grpc"

// Server owns the gRPC listener and server.
type Server struct {
	cfg     Config
	svc     *Service
	log     *slog.Logger
	srv     *grpclib.Server
	health  *health.Server
	lis     *closeNotifyListener
	serving sync.WaitGroup
	// opts build srv when the server starts serving (see serve).
	opts []grpclib.ServerOption

	// creds run each connection's handshake; conns indexes the accepted
	// connections by client address (see connIndex).
	creds *sniffingCredentials
	conns *connIndex

	// shutdown is cancelled when the server stops, ending long polls and
	// Telemetry streams so that a graceful stop does not wait for them.
	shutdown context.Context
	cancel   context.CancelFunc

	// certs serves the TLS certificate and reloads it (nil with TLS off).
	certs     *certreload.Store
	reloading sync.WaitGroup

	// readiness, when set, decides the grpc.health.v1 status: a goroutine
	// probes it every readinessPoll while serving (see watchReadiness).
	readiness ports.Readiness
	probing   sync.WaitGroup
	// statusMu orders the status updates; draining is set once the
	// server reports NOT_SERVING for good.
	statusMu sync.Mutex
	draining bool
}

// readinessPoll is how often grpc.health.v1 asks the readiness checks.
const readinessPoll = time.Second

// SetReadiness makes grpc.health.v1 report r (SERVING when it passes,
// NOT_SERVING otherwise) instead of SERVING whenever the port is open. Call
// it before Start.
func (s *Server) SetReadiness(r ports.Readiness) { s.readiness = r }

// watchReadiness sets the health status from the readiness checks until the
// server stops. The checks get the time the readiness gives them
// (health.checkTimeout), as on /readyz: a deadline of the poll interval
// here would fail a check that /readyz passes.
func (s *Server) watchReadiness() {
	defer s.probing.Done()
	tick := time.NewTicker(readinessPoll)
	defer tick.Stop()
	for {
		status := healthpb.HealthCheckResponse_SERVING
		if err := s.readiness.Ready(s.shutdown); err != nil {
			status = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if s.shutdown.Err() != nil {
			return
		}
		s.setStatus(status)
		select {
		case <-s.shutdown.Done():
			return
		case <-tick.C:
		}
	}
}

// NewServer builds the gRPC server; it does not listen until Start. log is
// the process logger: the server logs with component=grpc, the access log
// (with log.access) with component=access.
func NewServer(cfg Config, svc *Service, log *slog.Logger) (*Server, error) {
	base := log
	log = log.With("component", "grpc")
	tlsCfg, certs, generated, err := serverTLSConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	if generated {
		log.Info("serving TLS with a self-signed certificate; configure grpc.tls.certFile and grpc.tls.keyFile for production",
			slog.String("dir", cfg.TLS.SelfSignedDir))
	}
	if certs != nil {
		certs.WarnBefore(cfg.TLS.ExpiryWarning)
		certs.CheckExpiry(context.Background(), log, time.Now())
		if svc.tel.Measuring() {
			if err := certs.Observe(svc.tel.Metrics.Meter(), ListenerName); err != nil {
				log.Warn("cannot register the certificate expiry gauge", slog.Any("error", err))
			}
		}
	}
	s := &Server{cfg: cfg, svc: svc, log: log, health: health.NewServer(), certs: certs}
	s.shutdown, s.cancel = context.WithCancel(context.Background())
	svc.shutdown = s.shutdown
	creds := newSniffingCredentials(cfg.TLS.Mode, tlsCfg)
	creds.failures = handshake.NewFailures(log)
	if svc.tel.Measuring() {
		if err := creds.failures.Observe(svc.tel.Metrics.Meter(), ListenerName); err != nil {
			log.Warn("cannot register the handshake failure counter", slog.Any("error", err))
		}
	}
	s.creds = creds
	s.conns = newConnIndex()
	svc.closeConn, svc.connWritten = s.conns.close, s.conns.written
	if cfg.MaxStreamResetsPerSecond > 0 {
		creds.wrap = func(c net.Conn) net.Conn {
			return newResetWatcher(c, cfg.MaxStreamResetsPerSecond, func() {
				log.Warn("closing a connection that resets streams faster than grpc.maxStreamResetsPerSecond",
					slog.String("remote_addr", c.RemoteAddr().String()), slog.Int("max_per_second", cfg.MaxStreamResetsPerSecond))
			})
		}
	}
	unary := []grpclib.UnaryServerInterceptor{recoverUnary(log)}
	stream := recoverStream(log)
	if o := newObserver(svc.tel, base, log); o != nil {
		// The observer contains panics itself (see observe.go).
		unary = []grpclib.UnaryServerInterceptor{o.unary}
		stream = o.stream
	}
	opts := []grpclib.ServerOption{
		grpclib.Creds(creds),
		grpclib.ConnectionTimeout(cfg.HandshakeTimeout),
		grpclib.MaxRecvMsgSize(int(cfg.MaxRecvMessageSize)),
		grpclib.MaxHeaderListSize(uint32(cfg.MaxHeaderListSize)),
		grpclib.MaxConcurrentStreams(uint32(cfg.MaxConcurrentStreams)),
		grpclib.KeepaliveParams(keepaliveParams(cfg)),
		grpclib.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// The request chain: see observe.go.
		grpclib.ChainUnaryInterceptor(unary...),
		grpclib.ChainStreamInterceptor(svc.countOtherStreams(stream)),
		// Requests run on long-lived workers instead of a new goroutine
		// each: a fresh goroutine grows its stack by copying on every
		// request of the deep send path (13% of the CPU of a durable send).
		// More streams than workers at once still get goroutines of their
		// own, as without the option.
		grpclib.NumStreamWorkers(streamWorkers),
		// The caller's metadata is read once per stream (tap.go).
		grpclib.InTapHandle(svc.tapHeaders),
		// Compressed requests are refused unread (compression.go).
		refuseCompressedRequests(),
		// Sends decode with fewer allocations (codec.go).
		forceServerCodec(),
	}
	if cfg.FlowControlWindow > 0 {
		// Fixed windows turn grpc-go's window estimation off: it pings the
		// client after data arrives, a round trip of frames per request
		// (half of the system calls of a lone send).
		opts = append(opts, grpclib.InitialWindowSize(int32(cfg.FlowControlWindow)), grpclib.InitialConnWindowSize(int32(cfg.FlowControlWindow)))
	}
	// The gRPC server is built when it starts serving: its stream workers
	// are goroutines, which a start that fails (this one or another
	// module's) would leave behind.
	s.opts = opts
	return s, nil
}

// Start binds the listener, so a port in use fails start-up, and serves in
// a goroutine owned by the server.
func (s *Server) Start(context.Context) error {
	lis, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("grpc: listen on grpc.address %q: %w; %s", s.cfg.Address, err,
			listenhint.Hint(err, "grpc.address", "another process (perhaps another rmqproxy or RocketMQ proxy)"))
	}
	port := lis.Addr().(*net.TCPAddr).Port
	if s.cfg.MaxConnectionsPerAddress > 0 || s.cfg.MaxConnections > 0 {
		lis = newConnLimiter(lis, s.cfg.MaxConnectionsPerAddress, s.cfg.MaxConnections, s.log)
	}
	s.serve(lis, port)
	if s.certs != nil && s.cfg.TLS.ReloadInterval > 0 {
		s.reloading.Go(func() { s.certs.Watch(s.shutdown, s.cfg.TLS.ReloadInterval, s.log) })
	}
	s.log.Info("gRPC MessagingService listening", slog.String("address", lis.Addr().String()), slog.String("tls_mode", s.cfg.TLS.Mode))
	return nil
}

// serve serves on lis in a goroutine owned by the server; port is the port
// advertised in routes.
func (s *Server) serve(inner net.Listener, port int) {
	s.srv = grpclib.NewServer(s.opts...)
	v2.RegisterMessagingServiceServer(s.srv, s.svc)
	healthpb.RegisterHealthServer(s.srv, s.health)
	if s.cfg.Reflection {
		reflection.Register(s.srv)
	}
	lis := s.listener(inner)
	s.lis = lis
	s.svc.port = port
	if s.readiness == nil {
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(v2.MessagingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	} else {
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		s.health.SetServingStatus(v2.MessagingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
		s.probing.Add(1)
		go s.watchReadiness()
	}
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := s.srv.Serve(lis); err != nil && !errors.Is(err, grpclib.ErrServerStopped) {
			s.log.Error("gRPC server stopped serving", slog.Any("error", err))
		}
	}()
}

// listener wraps inner as gRPC accepts from it: each connection is indexed
// (see connIndex) from its accept.
func (s *Server) listener(inner net.Listener) *closeNotifyListener {
	return &closeNotifyListener{Listener: &indexingListener{Listener: inner, idx: s.conns}, closed: make(chan struct{})}
}

// Addr returns the bound address (useful with port 0).
func (s *Server) Addr() net.Addr {
	if s.lis == nil {
		return nil
	}
	return s.lis.Addr()
}

// ReportNotServing makes grpc.health.v1 answer NOT_SERVING from now on,
// while the server goes on serving: the first step of a graceful stop,
// which lets load balancers steer new clients away before connections
// close (see shutdown.drainDelay).
func (s *Server) ReportNotServing() {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	s.draining = true
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(v2.MessagingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
}

// setStatus sets the grpc.health.v1 status, unless the server is draining.
func (s *Server) setStatus(status healthpb.HealthCheckResponse_ServingStatus) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	if s.draining {
		return
	}
	s.health.SetServingStatus("", status)
	s.health.SetServingStatus(v2.MessagingService_ServiceDesc.ServiceName, status)
}

// Stop drains the server: it reports NOT_SERVING, closes the listener and
// sends every connection a GOAWAY (clients make new calls on a new
// connection, to another proxy behind a load balancer), then answers the
// long polls at once ("no new message") and ends the Telemetry streams,
// lets the other in-flight calls (sends) finish until ctx's deadline, and
// closes every connection.
func (s *Server) Stop(ctx context.Context) error {
	s.ReportNotServing()
	s.health.Shutdown()
	if s.srv == nil { // never served
		s.cancel()
		return nil
	}
	done := make(chan struct{})
	go func() { s.srv.GracefulStop(); close(done) }()
	// GracefulStop closes the listener, then sends the GOAWAYs. Long polls
	// end only then, so that clients poll again on a new connection rather
	// than here. (Serve itself returns only once GracefulStop is done, which
	// waits for the long polls: not a signal to wait for.)
	if s.lis != nil {
		select {
		case <-s.lis.closed:
		case <-ctx.Done():
		}
	}
	s.cancel()
	s.reloading.Wait()
	s.probing.Wait()
	select {
	case <-done:
	case <-ctx.Done():
		s.srv.Stop()
		<-done
	}
	s.serving.Wait()
	return nil
}

// closeNotifyListener closes its channel closed when the listener is
// closed.
type closeNotifyListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeNotifyListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// keepaliveParams closes connections idle for ClientIdleTimeout and pings
// the silent ones every KeepaliveTime (0: never, which grpc-go spells as
// an infinite time).
func keepaliveParams(cfg Config) keepalive.ServerParameters {
	every := cfg.KeepaliveTime
	if every == 0 {
		every = time.Duration(math.MaxInt64)
	}
	return keepalive.ServerParameters{MaxConnectionIdle: cfg.ClientIdleTimeout, Time: every, Timeout: cfg.KeepaliveTimeout}
}
