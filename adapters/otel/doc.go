// Package otel is rmqproxy's OpenTelemetry adapter: it builds the tracer
// and meter providers (the SDK), the OTLP exporters (gRPC or HTTP) and the
// Prometheus exposition served at /metrics on health.address and
// admin.address, and hands the adapters an *observe.Telemetry to record
// with. It also provides the instrumentation that wraps other adapters at
// the composition root: a [ports.Broker] decorator that traces broker calls
// ([TraceBroker]), the storage hooks that turn the local broker's appends,
// waits for durability and fsyncs into spans and a histogram
// ([Provider.StorageHooks]), and a slog handler that adds the trace id and
// the request's client and request ids to log records ([LogHandler]).
//
// Off costs nothing: with tracing off no tracer exists and the adapters
// skip every span call; with metrics off no meter exists and no instrument
// is touched. Only this package imports the SDK and the exporters; the
// other adapters use the OpenTelemetry API through adapters/internal/observe.
//
// [Provider.Shutdown] flushes the spans and metrics still buffered; the fx
// module runs it last at stop, after the servers have drained.
package otel
