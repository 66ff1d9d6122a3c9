package queue

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// qmail-send's logsafe: a newline becomes '/'; spaces, '%' and
// unprintable bytes become '_'.
func TestLogSafe(t *testing.T) {
	if got := logSafe("a b%c\nd\x7f"); got != "a_b_c/d_" {
		t.Errorf("logSafe = %q", got)
	}
	if got := logSafe("did 1+0+0\n"); got != "did_1+0+0/" {
		t.Errorf("logSafe = %q", got)
	}
}

func TestLogHandler(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(NewLogHandler(&b, false))
	l.Info("new msg 53", "msg", 53)
	l.Debug("hidden")
	l.With("x", 1).WithGroup("g").Warn("warning: x")
	if b.String() != "new msg 53\nwarning: x\n" {
		t.Errorf("%q", b.String())
	}
	b.Reset()
	h := NewLogHandler(&b, true)
	r := slog.NewRecord(time.Unix(901967408, 113926000), slog.LevelInfo, "new msg 19287", 0)
	h.Handle(t.Context(), r)
	r = slog.NewRecord(time.Unix(901967408, 5000), slog.LevelInfo, "end msg 19287", 0)
	h.Handle(t.Context(), r)
	if b.String() != "901967408.113926 new msg 19287\n901967408.000005 end msg 19287\n" {
		t.Errorf("%q", b.String())
	}
}
