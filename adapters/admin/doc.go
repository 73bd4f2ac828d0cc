// Package admin is rmqproxy's administrative HTTP/JSON API, its Go client
// and the table/JSON rendering the CLI uses (rmqproxy topic ..., rmqproxy
// group ..., rmqproxy client ...). The server drives [application.Admin]; it
// owns no state of its own.
//
// Routes (JSON in and out; durations as strings such as "10s"):
//
//	GET    /v1/topics               list topics            → {"topics":[Topic...]}
//	POST   /v1/topics               create a topic         ← CreateTopicRequest → 201 Topic
//	GET    /v1/topics/{name}        describe a topic       → Topic
//	PUT    /v1/topics/{name}        change given fields    ← UpdateTopicRequest → Topic
//	DELETE /v1/topics/{name}        delete a topic         → 204
//	GET    /v1/groups               list consumer groups   → {"groups":[Group...]}
//	POST   /v1/groups               create a group         ← CreateGroupRequest → 201 Group
//	GET    /v1/groups/{name}        describe a group       → Group
//	PUT    /v1/groups/{name}        change given fields    ← UpdateGroupRequest → Group
//	DELETE /v1/groups/{name}        delete a group         → 204
//	GET    /v1/groups/{name}/stats  per-queue progress     → GroupStats
//	GET    /v1/clients              connected clients      (?group=&topic=)
//	POST   /v1/clients/{id}/stack   a client's thread stacks, asked over its Telemetry stream
//	POST   /v1/clients/{id}/verify  a consumer verifies a message ← {"topic","messageId"}
//
// Names in paths are percent-encoded (a topic may contain % and |).
// Every failure is {"code":"TOPIC_NOT_FOUND","message":"..."} with an HTTP
// status derived from the domain reason in one place ([StatusOf]); a failure
// that is not a domain error is a 500 with a short id that is logged with the
// full error, and nothing internal reaches the client.
//
// Request bodies are decoded strictly: unknown fields, trailing data, wrong
// types and bodies over [MaxRequestBody] are 400 or 413 errors, never panics.
//
// Before any route, a request must be addressed to loopback, the host of
// admin.address or a host in admin.allowedHosts (else 403 FORBIDDEN, which
// defeats DNS rebinding), and a request with a body, and every POST and
// PUT, must have Content-Type: application/json (else 415
// UNSUPPORTED_MEDIA_TYPE, which defeats cross-site form posts).
//
// Without auth.enabled the API is unauthenticated, so it listens on loopback
// by default, and an admin.address beyond loopback is refused at start
// unless both auth.enabled and admin.tls.enabled are set. With auth.enabled
// every call must be signed by an enabled Super user over the whole call
// (method, target, body digest, date-time and a nonce accepted once; see
// auth.go and docs/security.md), and is authorized and audited.
// admin.tls.enabled serves the API over HTTPS only.
package admin
