package queue

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// outcomes records what Scheduler.Observe is told.
type outcomes struct {
	mu  sync.Mutex
	got []Outcome
}

func (o *outcomes) observe(out Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, out)
}

func (o *outcomes) list() []Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Outcome(nil), o.got...)
}

func TestSchedulerStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{hold: make(chan struct{})}
		var logs syncBuffer
		s := f.scheduler(q, &logs)
		var obs outcomes
		s.Observe = obs.observe
		if st := s.Stats(); st != (SchedulerStats{}) {
			t.Fatalf("before Run: %+v", st)
		}
		stop := startRun(t, s)
		if st := s.Stats(); !st.Running || st.Messages != 0 || !st.Oldest.IsZero() || !st.Heartbeat.Equal(time.Now()) {
			t.Fatalf("idle: %+v", st)
		}
		born := time.Now()
		inject(t, q, "me@domain", "x\n", "me@domain", "you@far.example")
		synctest.Wait()
		time.Sleep(2 * time.Second) // the oldest is looked for once a second
		synctest.Wait()
		st := s.Stats()
		if st.Messages != 1 || st.Unprocessed != 0 || !st.Oldest.Equal(born) {
			t.Errorf("delivering: %+v, born %v", st, born)
		}
		// An idle loop still beats.
		time.Sleep(time.Minute)
		synctest.Wait()
		if st := s.Stats(); time.Since(st.Heartbeat) > heartbeatInterval {
			t.Errorf("heartbeat %v old", time.Since(st.Heartbeat))
		}
		f.hold <- struct{}{}
		f.hold <- struct{}{}
		synctest.Wait()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := s.Stats(); st.Messages != 0 || !st.Oldest.IsZero() {
			t.Errorf("after delivery: %+v", st)
		}
		got := obs.list()
		if len(got) != 2 {
			t.Fatalf("outcomes %+v", got)
		}
		for _, o := range got {
			if !o.Success || o.Age != time.Minute+2*time.Second || o.Remote != (o.Recipient == "you@far.example") {
				t.Errorf("outcome %+v", o)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Running {
			t.Errorf("after Run: %+v", st)
		}
	})
}

// A permanent failure, and a message dying of old age, are final
// outcomes; deferrals are not.
func TestSchedulerObserveFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			switch rcpt {
			case "bad@far.example":
				return Result{Report: "no such user\n", Err: &PermanentError{"no such user\n"}}
			case "later@far.example":
				return Result{Report: "try later\n", Err: errors.New("later")}
			}
			return Result{Report: "did 1+0+0\n"}
		}}
		var logs syncBuffer
		s := f.scheduler(q, &logs)
		s.Lifetime = time.Hour
		var obs outcomes
		s.Observe = obs.observe
		stop := startRun(t, s)
		id := inject(t, q, "me@example.com", "x\n", "bad@far.example", "later@far.example")
		synctest.Wait()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		stop()
		var fails []Outcome
		for _, o := range obs.list() {
			if o.ID == id {
				fails = append(fails, o)
			}
		}
		if len(fails) != 2 || fails[0].Success || fails[1].Success || fails[0].Recipient != "bad@far.example" || fails[0].Age != 0 ||
			fails[1].Recipient != "later@far.example" || fails[1].Age <= time.Hour || !fails[1].Remote {
			t.Errorf("outcomes %+v", fails)
		}
	})
}

// dupKeys returns the keys that appear twice in one object of the JSON
// text line, or an error if it is not JSON.
func dupKeys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var dups []string
	type frame struct {
		obj  bool
		key  bool // the next string is a key
		seen map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return dups, nil
		}
		if err != nil {
			return nil, err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: v == '{', key: v == '{', seen: map[string]bool{}})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.obj && top.key {
				if top.seen[v] {
					dups = append(dups, v)
				}
				top.seen[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

func TestDupKeys(t *testing.T) {
	tests := []struct {
		in   string
		dups string
	}{
		{`{"a":1,"b":{"a":2,"c":[{"a":1},{"a":2}]},"c":"a"}`, ""},
		{`{"msg":"x","msg":53}`, "msg"},
		{`{"a":{"b":1,"b":2},"c":[{"d":1,"d":2}]}`, "b d"},
		{`{"a":"b","b":"a"}`, ""},
	}
	for _, tt := range tests {
		got, err := dupKeys(tt.in)
		if err != nil || strings.Join(got, " ") != tt.dups {
			t.Errorf("dupKeys(%s) = %q, %v; want %q", tt.in, got, err, tt.dups)
		}
	}
}

// The scheduler's structured attributes never use a key slog's own
// handlers write ("msg", "time", "level"): a JSON log has no duplicate key.
func TestSchedulerJSONLogNoDuplicateKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			if rcpt == "bad@far.example" {
				return Result{Report: "no\n", Err: &PermanentError{"no\n"}}
			}
			return Result{Report: "did 1+0+0\n"}
		}}
		var logs syncBuffer
		s := f.scheduler(q, io.Discard)
		s.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		stop := startRun(t, s)
		id := inject(t, q, "me@example.com", "x\n", "me@domain", "bad@far.example")
		synctest.Wait()
		stop()
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		var sawID bool
		for _, l := range lines {
			dups, err := dupKeys(l)
			if err != nil || len(dups) > 0 {
				t.Errorf("line %s: duplicate keys %v, %v", l, dups, err)
			}
			var rec map[string]any
			json.Unmarshal([]byte(l), &rec)
			if rec["msg"] == "new msg "+id.String() && rec["id"] == float64(id) {
				sawID = true
			}
		}
		if !sawID || len(lines) < 8 {
			t.Errorf("log:\n%s", logs.String())
		}
	})
}
