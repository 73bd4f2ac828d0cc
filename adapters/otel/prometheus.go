package otel

import (
	promclient "github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// PrometheusRPCLatency is the Prometheus name of rocketmq_rpc_latency:
// upstream's exporter appends the unit (milliseconds) to it, and only to
// it of the names rmqproxy shares (the others have no unit upstream).
// Over OTLP it keeps its name and unit.
const PrometheusRPCLatency = observe.MetricRPCLatency + "_milliseconds"

// compatGatherer gives the Prometheus exposition the Apache proxy's
// shape: rocketmq_rpc_latency's name.
type compatGatherer struct {
	g promclient.Gatherer
}

func (c compatGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := c.g.Gather()
	for _, f := range fams {
		if f.GetName() == observe.MetricRPCLatency {
			n := PrometheusRPCLatency
			f.Name = &n
		}
	}
	return fams, err
}
