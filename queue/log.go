package queue

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
)

// LogHandler is a slog.Handler that writes qmail-send's log lines: each
// record's message, which the Scheduler composes as qmail-send's exact line
// ("new msg 53", "delivery 1: success: did_1+0+0/", ...), then a newline.
// Attributes, which carry the same facts for structured handlers, are not
// written. Its zero value is not usable; set W.
type LogHandler struct {
	W io.Writer
	// Timestamp prefixes each line with the record's time as splogger
	// does, seconds since the epoch, a dot and six digits of microseconds
	// ("901967408.113926 new msg 19287"), which qmailanalog's matchup
	// needs.
	Timestamp bool
	// Level is the minimum level written; the zero value is Info.
	Level slog.Leveler

	mu *sync.Mutex
}

// NewLogHandler returns a LogHandler writing to w.
func NewLogHandler(w io.Writer, timestamp bool) *LogHandler {
	return &LogHandler{W: w, Timestamp: timestamp, mu: new(sync.Mutex)}
}

// Enabled reports whether level is at least h.Level.
func (h *LogHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.Level != nil {
		min = h.Level.Level()
	}
	return l >= min
}

// Handle writes the record's message as one line.
func (h *LogHandler) Handle(_ context.Context, r slog.Record) error {
	b := make([]byte, 0, len(r.Message)+24)
	if h.Timestamp {
		b = strconv.AppendInt(b, r.Time.Unix(), 10)
		b = append(b, '.')
		us := strconv.Itoa(r.Time.Nanosecond() / 1000)
		for range 6 - len(us) {
			b = append(b, '0')
		}
		b = append(b, us...)
		b = append(b, ' ')
	}
	b = append(b, r.Message...)
	b = append(b, '\n')
	if h.mu != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	_, err := h.W.Write(b)
	return err
}

// WithAttrs returns h: attributes are not part of qmail's lines.
func (h *LogHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup returns h.
func (h *LogHandler) WithGroup(string) slog.Handler { return h }

// logSafe makes text safe for a log line as qmail-send does: \n becomes /,
// every byte below 33 or above 126, and %, becomes _.
func logSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '\n':
			b[i] = '/'
		case c < 33 || c > 126 || c == '%':
			b[i] = '_'
		}
	}
	return string(b)
}
