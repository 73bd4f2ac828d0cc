package grpc

import "context"

// accessNote is what a request's handler learns about its caller that the
// access log names besides the metadata: the user that authentication
// established. The observer puts one in the request's context when the
// access log is on; the handler fills it in (noteAuthenticated) and the
// observer reads it once the handler has returned, on the same goroutine.
type accessNote struct{ user string }

type accessNoteKey struct{}

// withAccessNote returns ctx carrying a new, empty accessNote.
func withAccessNote(ctx context.Context) (context.Context, *accessNote) {
	n := &accessNote{}
	return context.WithValue(ctx, accessNoteKey{}, n), n
}

// noteAuthenticated records user as the authenticated caller of the
// request of ctx for its access-log line (nothing without one).
func noteAuthenticated(ctx context.Context, user string) {
	if n, ok := ctx.Value(accessNoteKey{}).(*accessNote); ok {
		n.user = user
	}
}
