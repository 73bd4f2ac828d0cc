package ports

// ClientChannel is a live server-to-client command stream of one client
// (a gRPC Telemetry stream). The session registry holds the latest channel
// of each client; a push consumer without a live channel cannot have its
// deliveries renewed by the proxy.
type ClientChannel interface {
	// Done is closed when the stream ends.
	Done() <-chan struct{}
}
