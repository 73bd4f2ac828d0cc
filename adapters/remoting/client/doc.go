// Package client is rmqproxy's Remoting client: it sends requests to
// NameServers and Brokers and matches their answers, over a small pool of
// TCP (optionally TLS) connections per address, and serves the requests
// brokers send back on those connections (CHECK_TRANSACTION_STATE,
// NOTIFY_CONSUMER_IDS_CHANGED, GET_CONSUMER_RUNNING_INFO, ...) through
// handlers the caller registers.
//
// It does not know what requests mean: building headers and bodies and
// interpreting answers is the cluster adapter's job, with package remoting.
//
// Invariants callers rely on:
//   - every call ends by the caller's context deadline (or
//     Config.DefaultTimeout when the context has none): a peer that never
//     answers, answers garbage or closes mid-frame yields an *Error, never a
//     hang or a panic; late answers are dropped;
//   - at most Config.MaxInFlight requests wait for answers on one
//     connection; a caller beyond the bound waits for a slot until its
//     context ends; long polls (InvokeLongPoll) take no slot, so that polls
//     a broker holds never keep quick requests waiting;
//   - a connection that fails is dropped and redialled on demand, and so is
//     one whose peer went silent (Config.SilenceTimeout) while a call waited
//     past its deadline; one the peer said GO_AWAY on takes no new calls
//     and is closed once no call waits on it; after a failed dial the
//     address is not dialled again before a back-off (doubling from
//     Config.ReconnectMin to ReconnectMax) and calls fail fast with a
//     retryable *Error meanwhile;
//   - every goroutine (one reader and one writer per connection, one per
//     running handler) is owned by the Client and has exited when Close
//     returns.
package client
