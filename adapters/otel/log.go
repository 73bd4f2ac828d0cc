package otel

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/rmqproxy/rmqproxy/ports"
)

// LogHandler wraps h so that a record logged with a request's context
// carries the request's trace_id and span_id (when a span is in the
// context) and its client_id and request_id (from [ports.RequestInfo]),
// unless the record already has them. Nothing else of the request is
// added: metadata may hold credentials.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		return l.Handler.Handle(ctx, r)
	}
	sc := trace.SpanContextFromContext(ctx)
	info := ports.RequestInfoFrom(ctx)
	if !sc.IsValid() && info.ClientID == "" && info.RequestID == "" {
		return l.Handler.Handle(ctx, r)
	}
	var has struct{ trace, client, request bool }
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "trace_id":
			has.trace = true
		case "client_id":
			has.client = true
		case "request_id":
			has.request = true
		}
		return true
	})
	r = r.Clone()
	if sc.IsValid() && !has.trace {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if info.ClientID != "" && !has.client {
		r.AddAttrs(slog.String("client_id", info.ClientID))
	}
	if info.RequestID != "" && !has.request {
		r.AddAttrs(slog.String("request_id", info.RequestID))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
