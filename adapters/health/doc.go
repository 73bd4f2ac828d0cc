// Package health serves rmqproxy's health endpoints on their own HTTP port
// (health.address, default :9090), with the metrics:
//
//	GET /livez    200 "ok" while the process runs (liveness; /healthz is
//	              the same, kept for existing probes)
//	GET /readyz   200 {"status":"ready",...} when every readiness check
//	              passes, 503 {"status":"not ready","failing":[...]} otherwise;
//	              checks that serve but not fully are listed under
//	              "degraded" with their reasons, and stay 200
//	GET /metrics  the Prometheus exposition, when adapters/otel contributes it
//	              (routes of the value group httproutes are mounted here)
//
// Readiness checks come from the other adapters through the fx value group
// "readiness": an adapter provides a [Check] (see [AsCheck]) and the server
// runs all of them, concurrently, on each /readyz request, each bounded by
// health.checkTimeout. A check must honour its context: the probe waits for
// every check to return.
//
// The package knows nothing about what is checked; it never reads
// configuration itself and owns only the HTTP server, its goroutine and the
// goroutines of one probe, all of which have exited when [Server.Stop]
// returns.
package health
