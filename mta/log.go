package mta

import (
	"context"
	"log/slog"
)

// sendHandler passes the scheduler's records on with its attribute "msg"
// (the message number) renamed "id": slog's text and JSON handlers write
// the record's message under the key "msg" too, and a JSON reader keeps
// only the last of two equal keys, which would lose qmail-send's line.
type sendHandler struct{ h slog.Handler }

func (s sendHandler) Enabled(ctx context.Context, l slog.Level) bool { return s.h.Enabled(ctx, l) }

func (s sendHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == slog.MessageKey {
			a.Key = "id"
		}
		out.AddAttrs(a)
		return true
	})
	return s.h.Handle(ctx, out)
}

func (s sendHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sendHandler{s.h.WithAttrs(as)}
}

func (s sendHandler) WithGroup(name string) slog.Handler { return sendHandler{s.h.WithGroup(name)} }
