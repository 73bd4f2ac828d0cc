package ports

import "context"

// Readiness tells whether the process can serve requests now: nil, or an
// error saying why not (starting, recovering storage, a full disk, ...).
// Protocol adapters report it through their own health protocols (such as
// grpc.health.v1). It bounds its own checks (health.checkTimeout) and must
// return promptly once ctx is done.
type Readiness interface {
	Ready(ctx context.Context) error
}
