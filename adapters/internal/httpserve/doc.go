// Package httpserve runs one HTTP server for an adapter that serves HTTP
// (the admin API, the health endpoints): it owns the listener, the serving
// goroutine and the server's root context, and nothing else.
//
// It does not own routes, handlers or what a server logs about itself being
// up: the adapter builds the [http.Handler], logs "... listening" with the
// attributes its readers expect, and names the setting of its address.
// Adapters never import each other; this package is how two of them share
// the lifecycle without doing so.
//
// Invariants callers rely on:
//   - [Server.Start] binds before it returns, so a taken port fails startup
//     with an error that wraps the cause (errors.Is(err, syscall.EADDRINUSE))
//     and names the setting to change.
//   - Every request's context derives from the root context, which
//     [Server.Stop] cancels once in-flight requests have had until the stop
//     deadline to finish.
//   - [Server.Stop] returns only after the serving goroutine has exited; it
//     does nothing for a server that never started.
package httpserve
