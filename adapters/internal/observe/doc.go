// Package observe is the instrumentation the inbound adapters share:
// request spans, the proxy's metric instruments, the bounded label values
// of topics and groups, and the W3C trace context carried in messages. It
// uses the OpenTelemetry API only; the SDK, the exporters and the Prometheus
// endpoint live in adapters/otel, which builds a [Telemetry] and hands it to
// the adapters through fx.
//
// Off costs nothing: a nil *Telemetry, a nil Tracer and nil Metrics are
// all valid and record nothing, and callers test them before building
// attributes, so that a proxy with tracing and metrics off runs the same
// code as one built without this package.
//
// Metrics are recorded with attribute sets built once per label
// combination and cached ([Metrics] keeps them), so recording on the hot
// path allocates nothing once a combination has been seen. Label values of
// topics and consumer groups go through [Labels]: an allow-list, or the
// first N names seen, with every other name counted under [Other]; a
// deleted name frees its slot ([Metrics.ForgetTopic]). The metrics
// labelled by topic or group count into [Metrics]' own table, which
// adapters/otel reads when the metrics are collected.
package observe
