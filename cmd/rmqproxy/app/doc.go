// Package app is rmqproxy's composition root: the root configuration that
// aggregates every adapter's Config, its profile-dependent defaults, and the
// fx options that wire the adapters around the use cases for a mode.
//
// cmd/rmqproxy runs it; the end-to-end tests in test/ start the very same
// graph in process, so what is tested is what ships.
package app
