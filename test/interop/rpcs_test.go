package interop_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// rpcKey is one RPC and the code it was answered with, as rmqproxy counts
// them in rocketmq_rpc_latency_milliseconds (request_code, response_code).
type rpcKey struct{ method, code string }

// rpcCounts reads how many RPCs of each kind p has answered with each code.
func rpcCounts(t *testing.T, p *testenv.Proxy) map[rpcKey]uint64 {
	t.Helper()
	var fams map[string]*dto.MetricFamily
	testenv.WaitFor(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + p.HealthAddr() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /metrics: %d %v", resp.StatusCode, err)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err = parser.TextToMetricFamilies(bytes.NewReader(body))
		return err
	})
	counts := map[rpcKey]uint64{}
	for _, m := range fams["rocketmq_rpc_latency_milliseconds"].GetMetric() {
		var k rpcKey
		grpc := false
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "request_code":
				k.method = l.GetValue()
			case "response_code":
				k.code = l.GetValue()
			case "protocol_type":
				grpc = l.GetValue() == "grpc"
			}
		}
		if grpc { // not the Remoting calls of cluster mode
			counts[k] += m.GetHistogram().GetSampleCount()
		}
	}
	return counts
}

// rpcDelta is what a program's run added to the proxy's RPC counts.
type rpcDelta map[rpcKey]uint64

func diffRPCs(before, after map[rpcKey]uint64) rpcDelta {
	d := rpcDelta{}
	for k, n := range after {
		if n > before[k] {
			d[k] = n - before[k]
		}
	}
	return d
}

func (d rpcDelta) String() string {
	var parts []string
	for k, n := range d {
		parts = append(parts, fmt.Sprintf("%s %s: %d", k.method, k.code, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
