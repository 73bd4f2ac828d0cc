package otel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.30.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// OtherLabel is the topic or consumer_group label value of every name
// without a value of its own (see metrics.maxTopics, metrics.maxGroups).
const OtherLabel = observe.Other

// instrumentationName names rmqproxy's tracer and meter (the scope).
const instrumentationName = "github.com/rmqproxy/rmqproxy"

// Info describes this process in the resource of every span and metric.
type Info struct {
	// Mode is local or cluster (the proxy_mode label of rocketmq_proxy_up).
	Mode string
	// InstanceID is service.instance.id: an address or host name that
	// tells this proxy from the others of a deployment. One ending in :0
	// (grpc.address with port 0) takes the port the listener is bound to
	// on /metrics once [Provider.BoundPort] says it.
	InstanceID string
	// Cluster is the cluster label of the series on /metrics (empty:
	// DefaultCluster, upstream's default).
	Cluster string
}

// Options are what [New] builds from.
type Options struct {
	OTLP    OTLPConfig
	Tracing TracingConfig
	Metrics MetricsConfig
	// AccessLog and LogBodies go to the [observe.Telemetry] (log.access,
	// log.bodies).
	AccessLog, LogBodies bool
	Info                 Info
	Log                  *slog.Logger
}

// Provider owns the SDK providers and exporters. Build it with [New]; call
// [Provider.Shutdown] to flush and stop them.
type Provider struct {
	tracer   *sdktrace.TracerProvider // nil: tracing off
	meter    *sdkmetric.MeterProvider // nil: metrics off
	registry *promclient.Registry     // nil: no /metrics
	tel      *observe.Telemetry
	log      *slog.Logger
	info     Info
	bound    atomic.Pointer[string] // InstanceID with the bound port
}

// New builds the providers the options ask for. Exporters connect lazily:
// an unreachable collector does not fail start-up; failed exports are
// logged and their data dropped (the buffers are bounded).
func New(o Options) (*Provider, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Info.InstanceID == "" {
		o.Info.InstanceID, _ = os.Hostname()
	}
	p := &Provider{log: o.Log, tel: &observe.Telemetry{AccessLog: o.AccessLog, LogBodies: o.LogBodies}, info: o.Info}
	if !o.Tracing.Enabled && !o.Metrics.Enabled {
		return p, nil
	}
	otelapi.SetErrorHandler(otelapi.ErrorHandlerFunc(func(err error) {
		o.Log.Warn("OpenTelemetry export failed; the data is dropped", slog.Any("error", err))
	}))
	res := newResource(o.Info)
	if o.Tracing.Enabled {
		exp, err := newSpanExporter(o.OTLP)
		if err != nil {
			return nil, err
		}
		p.tracer = sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.Tracing.SampleRatio))),
			sdktrace.WithBatcher(&boundSpanExporter{SpanExporter: exp, labels: p.constantLabels()}),
		)
		p.tel.Tracer = p.tracer.Tracer(instrumentationName)
	}
	if o.Metrics.Enabled {
		if err := p.startMetrics(o, res); err != nil {
			return nil, errors.Join(err, p.Shutdown(context.Background()))
		}
	}
	return p, nil
}

func (p *Provider) startMetrics(o Options, res *resource.Resource) error {
	opts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	labelled := &labelledProducer{}
	if o.Metrics.Prometheus {
		p.registry = promclient.NewRegistry()
		p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		// Names as given: upstream's rocketmq_* names carry no unit suffix.
		exp, err := promexporter.New(promexporter.WithRegisterer(p.registry), promexporter.WithoutUnits(), promexporter.WithoutScopeInfo(),
			promexporter.WithProducer(labelled))
		if err != nil {
			return fmt.Errorf("otel: prometheus exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(exp))
	}
	if o.Metrics.OTLP {
		otlp, err := newMetricExporter(o.OTLP)
		if err != nil {
			return err
		}
		exp := &labelledExporter{Exporter: otlp, labels: p.constantLabels()}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(o.Metrics.OTLPInterval), sdkmetric.WithProducer(newDeltaProducer(labelled, exp)))))
	}
	p.meter = sdkmetric.NewMeterProvider(opts...)
	meter := p.meter.Meter(instrumentationName)
	m, err := observe.NewMetrics(meter, observe.NewLabels(o.Metrics.Topics, o.Metrics.MaxTopics, o.Metrics.Groups, o.Metrics.MaxGroups))
	if err != nil {
		return fmt.Errorf("otel: instruments: %w", err)
	}
	labelled.m.Store(m)
	up, err := meter.Int64ObservableGauge("rocketmq_proxy_up", metric.WithDescription("1 while the proxy runs."))
	if err != nil {
		return fmt.Errorf("otel: instruments: %w", err)
	}
	upSet := metric.WithAttributeSet(attribute.NewSet(attribute.String("proxy_mode", o.Info.Mode)))
	if _, err := meter.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		ob.ObserveInt64(up, 1, upSet)
		return nil
	}, up); err != nil {
		return fmt.Errorf("otel: instruments: %w", err)
	}
	p.tel.Metrics = m
	return nil
}

// constantLabels decides the constant labels of the series exported.
func (p *Provider) constantLabels() constantLabels {
	cluster := p.info.Cluster
	if cluster == "" {
		cluster = "DefaultCluster"
	}
	return constantLabels{info: p.info, bound: &p.bound, cluster: cluster}
}

func newResource(info Info) *resource.Resource {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("rmqproxy"), semconv.ServiceVersion(version), semconv.ServiceInstanceID(info.InstanceID),
		attribute.String("rocketmq.proxy.mode", info.Mode))
}

func newSpanExporter(c OTLPConfig) (sdktrace.SpanExporter, error) {
	hostPort, insecure := c.endpoint()
	headers, err := parseHeaders(c.Headers)
	if err != nil {
		return nil, err
	}
	ctx := context.Background() // the exporters dial lazily; New does not block
	if c.Protocol == ProtocolHTTP {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(hostPort), otlptracehttp.WithHeaders(headers), otlptracehttp.WithTimeout(c.Timeout)}
		if insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(hostPort), otlptracegrpc.WithHeaders(headers), otlptracegrpc.WithTimeout(c.Timeout)}
	if insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return otlptracegrpc.New(ctx, opts...)
}

func newMetricExporter(c OTLPConfig) (sdkmetric.Exporter, error) {
	hostPort, insecure := c.endpoint()
	headers, err := parseHeaders(c.Headers)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if c.Protocol == ProtocolHTTP {
		opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(hostPort), otlpmetrichttp.WithHeaders(headers), otlpmetrichttp.WithTimeout(c.Timeout)}
		if insecure {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		}
		return otlpmetrichttp.New(ctx, opts...)
	}
	opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(hostPort), otlpmetricgrpc.WithHeaders(headers), otlpmetricgrpc.WithTimeout(c.Timeout)}
	if insecure {
		opts = append(opts, otlpmetricgrpc.WithInsecure())
	}
	return otlpmetricgrpc.New(ctx, opts...)
}

// Telemetry returns what the adapters record with; never nil.
func (p *Provider) Telemetry() *observe.Telemetry { return p.tel }

// Tracer returns the tracer, or nil when tracing is off.
func (p *Provider) Tracer() trace.Tracer { return p.tel.Tracer }

// Meter returns the meter, or nil when metrics are off.
func (p *Provider) Meter() metric.Meter {
	if p.tel.Metrics == nil {
		return nil
	}
	return p.tel.Metrics.Meter()
}

// ForgetTopic drops the series of a deleted topic and frees its label slot
// (metrics.maxTopics) for a new topic; a topic created again with the same
// name starts its series from zero. Nothing with metrics off.
func (p *Provider) ForgetTopic(name string) { p.tel.Metrics.ForgetTopic(name) }

// ForgetGroup is [Provider.ForgetTopic] for a deleted consumer group
// (metrics.maxGroups).
func (p *Provider) ForgetGroup(name string) { p.tel.Metrics.ForgetGroup(name) }

// MetricsHandler serves the Prometheus text format, or OpenMetrics to a
// scraper that asks for it (the format that carries the trace exemplars of
// rocketmq_rpc_latency), or is nil when metrics.prometheus is off.
func (p *Provider) MetricsHandler() http.Handler {
	if p.registry == nil {
		return nil
	}
	g := compatGatherer{g: p.registry, labels: p.constantLabels()}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slogPrinter{p.log}, ErrorHandling: promhttp.ContinueOnError,
		EnableOpenMetrics: true})
}

// BoundPort tells the port the gRPC listener is bound to: an instance id
// configured with port 0 shows it on /metrics (target_info's
// service_instance_id and node_id), in OTLP metrics (their resource's
// service.instance.id and node_id) and in spans' resource from then on.
func (p *Provider) BoundPort(port int) {
	id, ok := strings.CutSuffix(p.info.InstanceID, ":0")
	if !ok || port <= 0 {
		return
	}
	id += ":" + strconv.Itoa(port)
	p.bound.Store(&id)
}

// ForceFlush exports the spans and metrics buffered so far.
func (p *Provider) ForceFlush(ctx context.Context) error {
	var errs []error
	if p.tracer != nil {
		errs = append(errs, p.tracer.ForceFlush(ctx))
	}
	if p.meter != nil {
		errs = append(errs, p.meter.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

// Shutdown flushes what is buffered and stops the exporters, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	var errs []error
	if p.tracer != nil {
		errs = append(errs, p.tracer.Shutdown(ctx))
	}
	if p.meter != nil {
		errs = append(errs, p.meter.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// slogPrinter lets promhttp report scrape errors through slog.
type slogPrinter struct{ log *slog.Logger }

func (s slogPrinter) Println(v ...any) {
	s.log.Warn("serving /metrics", slog.String("error", fmt.Sprint(v...)))
}
