package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sent is one delivery a fake deliverer saw.
type sent struct {
	at     time.Time
	id     ID
	sender string
	rcpts  []string
	body   string
	dsn    *DSN
}

// fakes records deliveries and answers from a table of recipient → result.
type fakes struct {
	mu      sync.Mutex
	local   []sent
	remote  []sent
	answer  func(rcpt string, attempt int) Result
	tries   map[string]int
	active  int
	maxAct  int
	hold    chan struct{} // when set, each delivery waits for a value
	domains map[string]int
	maxDom  int
	delay   func(rcpt string) time.Duration // fake time a delivery takes, for a deterministic order
}

func (f *fakes) deliver(ctx context.Context, d Delivery, remote bool) []Result {
	at := time.Now()
	body, _ := io.ReadAll(d.Message)
	if f.delay != nil {
		time.Sleep(f.delay(d.Recipients[0]))
	}
	f.mu.Lock()
	f.active++
	f.maxAct = max(f.maxAct, f.active)
	if remote {
		dom := domainOf(d.Recipients[0])
		if f.domains == nil {
			f.domains = map[string]int{}
		}
		f.domains[dom]++
		f.maxDom = max(f.maxDom, f.domains[dom])
	}
	f.mu.Unlock()
	if f.hold != nil {
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active--
	if remote {
		f.domains[domainOf(d.Recipients[0])]--
	}
	s := sent{at: at, id: d.ID, sender: d.Sender, rcpts: d.Recipients, body: string(body), dsn: d.DSN}
	if remote {
		f.remote = append(f.remote, s)
	} else {
		f.local = append(f.local, s)
	}
	if f.tries == nil {
		f.tries = map[string]int{}
	}
	var res []Result
	for _, r := range d.Recipients {
		f.tries[r]++
		if f.answer != nil {
			res = append(res, f.answer(r, f.tries[r]))
		} else if remote {
			res = append(res, Result{Report: "1.2.3.4 accepted message.\nRemote host said: 250 ok\n"})
		} else {
			res = append(res, Result{Report: "did 1+0+0\n"})
		}
	}
	return res
}

func (f *fakes) scheduler(q *Queue, logw io.Writer) *Scheduler {
	return &Scheduler{
		Queue:     q,
		Local:     LocalFunc(func(ctx context.Context, d Delivery) Result { return f.deliver(ctx, d, false)[0] }),
		Remote:    RemoteFunc(func(ctx context.Context, d Delivery) []Result { return f.deliver(ctx, d, true) }),
		Routing:   Routing{Locals: []string{"domain", "example.com"}, EnvNoAtHost: "example.com"},
		Bounce:    Bounce{Host: "mx.example.com", DoubleHost: "example.com"},
		Logger:    slog.New(NewLogHandler(logw, false)),
		NoTrigger: true,
	}
}

func (f *fakes) snapshot() (local, remote []sent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.local...), append([]sent(nil), f.remote...)
}

// startRun runs s in the background of a synctest bubble; stop cancels it
// and returns Run's error.
func startRun(t *testing.T, s *Scheduler) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	synctest.Wait()
	return func() error {
		cancel()
		return <-errc
	}
}

func inject(t *testing.T, q *Queue, sender string, body string, rcpts ...string) ID {
	t.Helper()
	id, err := q.Inject(t.Context(), Envelope{Sender: sender, Recipients: rcpts}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// symbolic replaces message numbers by #1, #2 ... in order of appearance.
func symbolic(log string, ids ...ID) string {
	for i, id := range ids {
		log = regexp.MustCompile(`\b`+id.String()+`\b`).ReplaceAllString(log, fmt.Sprintf("#%d", i+1))
	}
	return log
}

func emptyQueue(t *testing.T, q *Queue) {
	t.Helper()
	if files := queueFiles(t, q); len(files) != 0 {
		t.Errorf("queue not empty: %v", files)
	}
}

// The log of one local delivery, line for line as qmail-send writes it.
func TestSchedulerLogVector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Origin: Origin{PID: 20345, UID: 666}, Now: time.Now})
		f := &fakes{}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		recv := ReceivedLine(q.origin, time.Now())
		id := inject(t, q, "me@domain", strings.Repeat("x", 246-len(recv)), "me@domain")
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		n := id.String()
		want := "status: local 0/10 remote 0/20\n" +
			"new msg " + n + "\n" +
			"info msg " + n + ": bytes 246 from <me@domain> qp 20345 uid 666\n" +
			"starting delivery 1: msg " + n + " to local me@domain\n" +
			"status: local 1/10 remote 0/20\n" +
			"delivery 1: success: did_1+0+0/\n" +
			"status: local 0/10 remote 0/20\n" +
			"end msg " + n + "\n" +
			"status: local 0/10 remote 0/20 exitasap\n" +
			"status: exiting\n"
		if logs.String() != want {
			t.Errorf("log:\n%s\nwant:\n%s", logs.String(), want)
		}
		local, _ := f.snapshot()
		if len(local) != 1 || local[0].sender != "me@domain" || local[0].rcpts[0] != "me@domain" || len(local[0].body) != 246 || !strings.HasPrefix(local[0].body, recv) {
			t.Errorf("delivered %+v", local)
		}
		emptyQueue(t, q)
	})
}

// A message with local and remote recipients, a permanent and a temporary
// failure, retries on qmail's schedule, the bounce and its delivery: the
// whole log as a golden file.
func TestSchedulerBounceGolden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Origin: Origin{PID: 100, UID: 1000}, Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			switch {
			case rcpt == "nobody@example.com":
				return Result{Report: "Sorry, no mailbox here by that name. (#5.1.1)\n", Err: &PermanentError{"no mailbox"}}
			case rcpt == "slow@far.example" && try < 3:
				return Result{Report: "Connected to 1.2.3.4 but greeting failed.\nRemote host said: 421 busy\n", Err: errors.New("421")}
			case strings.HasSuffix(rcpt, "@example.com"):
				return Result{Report: "did 1+0+0\n"}
			}
			return Result{Report: "1.2.3.4 accepted message.\nRemote host said: 250 ok\n"}
		}}
		f.delay = func(rcpt string) time.Duration { return time.Duration(len(rcpt)) * time.Second }
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		start := time.Now()
		id := inject(t, q, "joe@sender.example", "Subject: test\n\nhello\n", "bob@example.com", "nobody@example.com", "a@far.example", "slow@far.example", "B@FAR.example")
		synctest.Wait()
		time.Sleep(2000 * time.Second) // attempts at +400 and +1600
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		_, remote := f.snapshot()
		// The three far.example recipients in one transaction, then the
		// retries, then the bounce to the sender.
		if len(remote) != 4 || len(remote[0].rcpts) != 3 {
			t.Fatalf("remote deliveries %+v", remote)
		}
		if d := remote[1].at.Sub(start); d != 400*time.Second {
			t.Errorf("first retry after %v, want 400s", d)
		}
		if d := remote[2].at.Sub(start); d != 1600*time.Second {
			t.Errorf("second retry after %v, want 1600s", d)
		}
		b := remote[3]
		if b.sender != "" || len(b.rcpts) != 1 || b.rcpts[0] != "joe@sender.example" {
			t.Fatalf("bounce envelope %q %q", b.sender, b.rcpts)
		}
		bounceID := b.id
		body := regexp.MustCompile(`\(qmail 100 invoked (by uid 1000|for bounce)\); [^\n]*`).ReplaceAllString(b.body, "(qmail 100 invoked $1); DATE")
		body = regexp.MustCompile(`Date: [^\n]*`).ReplaceAllString(body, "Date: DATE")
		golden(t, "scheduler-bounce-message.golden", []byte(body))
		golden(t, "scheduler-bounce.log", []byte(symbolic(logs.String(), id, bounceID)))
		emptyQueue(t, q)
	})
}

// A failing bounce becomes a double bounce to the
// postmaster; a failing double bounce is discarded.
func TestSchedulerDoubleAndTripleBounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			if rcpt == "postmaster@example.com" {
				return Result{Report: "did 0+0+1\n"}
			}
			return Result{Report: "no (#5.1.1)\n", Err: &PermanentError{"no"}}
		}}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		inject(t, q, "", "Subject: a bounce\n\n", "gone@example.com")
		synctest.Wait()
		inject(t, q, "#@[]", "Subject: a double bounce\n\n", "gone2@example.com")
		synctest.Wait()
		stop()
		local, _ := f.snapshot()
		if len(local) != 3 || local[1].rcpts[0] != "postmaster@example.com" || local[1].sender != "#@[]" {
			t.Fatalf("local deliveries %+v", local)
		}
		if !strings.Contains(local[1].body, "\n--- Below this line is the original bounce.\n\nReturn-Path: <>\n") {
			t.Errorf("double bounce body %q", local[1].body)
		}
		if !regexp.MustCompile(`\ntriple bounce: discarding bounce/\d+\n`).MatchString(logs.String()) {
			t.Errorf("no triple bounce in log:\n%s", logs.String())
		}
		emptyQueue(t, q)
	})
}

// A message past its lifetime (queuelifetime) gets one more pass, whose
// temporary failures bounce.
func TestSchedulerLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			if rcpt == "bounce@example.com" || rcpt == "joe@example.com" {
				return Result{Report: "did 1+0+0\n"}
			}
			return Result{Report: "try later\n", Err: errors.New("later")}
		}}
		s := f.scheduler(q, &logs)
		s.Lifetime = 3600 * time.Second
		stop := startRun(t, s)
		start := time.Now()
		inject(t, q, "joe@example.com", "x\n", "r@far.example")
		synctest.Wait()
		time.Sleep(7000 * time.Second)
		synctest.Wait()
		stop()
		_, remote := f.snapshot()
		var at []time.Duration
		for _, d := range remote {
			at = append(at, d.at.Sub(start))
		}
		// birth+0, +400, +1600, +3600 (not dying: not past 3600), +6400 (dying).
		want := []time.Duration{0, 400 * time.Second, 1600 * time.Second, 3600 * time.Second, 6400 * time.Second}
		if fmt.Sprint(at) != fmt.Sprint(want) {
			t.Errorf("attempts at %v, want %v", at, want)
		}
		if !strings.Contains(logs.String(), "delivery 5: failure: try_later/I'm_not_going_to_try_again;_this_message_has_been_in_the_queue_too_long./\n") {
			t.Errorf("log:\n%s", logs.String())
		}
		local, _ := f.snapshot()
		if len(local) != 1 || local[0].rcpts[0] != "joe@example.com" || !strings.Contains(local[0].body, "<r@far.example>:\ntry later\nI'm not going to try again; this message has been in the queue too long.\n\n") {
			t.Errorf("bounce %+v", local)
		}
		emptyQueue(t, q)
	})
}

func TestSchedulerConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{hold: make(chan struct{})}
		s := f.scheduler(q, &logs)
		s.ConcurrencyLocal = 2
		s.ConcurrencyRemote = 3
		s.ConcurrencyDomain = 1
		s.RemoteBatch = 2
		stop := startRun(t, s)
		for i := range 5 {
			inject(t, q, "s@x", "x\n", fmt.Sprintf("u%d@example.com", i))
		}
		inject(t, q, "s@x", "x\n", "a@one.example", "b@one.example", "c@one.example", "d@two.example", "e@three.example")
		synctest.Wait()
		for range 5 + 4 {
			f.hold <- struct{}{}
			synctest.Wait()
		}
		stop()
		local, remote := f.snapshot()
		if len(local) != 5 || f.maxAct > 2+3 {
			t.Errorf("%d local deliveries, %d at once", len(local), f.maxAct)
		}
		if f.maxDom != 1 {
			t.Errorf("%d transactions at once to one domain, limit 1", f.maxDom)
		}
		var sizes []int
		for _, d := range remote {
			sizes = append(sizes, len(d.rcpts))
		}
		slices.Sort(sizes)
		if len(remote) != 4 || fmt.Sprint(sizes) != "[1 1 1 2]" {
			t.Errorf("remote transactions %v", sizes)
		}
		if strings.Contains(logs.String(), "local 3/2") || strings.Contains(logs.String(), "remote 4/3") {
			t.Errorf("limit exceeded:\n%s", logs.String())
		}
		emptyQueue(t, q)
	})
}

// Routing and Reload: new messages use the new routing.
func TestSchedulerRoutingReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		s := f.scheduler(q, &logs)
		s.Routing = vectorRouting()
		stop := startRun(t, s)
		inject(t, q, "s@x", "x\n", "info@virt.example", "joe", "u%far.example@relay.example.com")
		synctest.Wait()
		s.Reload(Routing{Locals: []string{"far.example"}})
		synctest.Wait()
		inject(t, q, "s@x", "x\n", "u@far.example")
		synctest.Wait()
		stop()
		local, remote := f.snapshot()
		var got []string
		for _, d := range local {
			got = append(got, "local "+d.rcpts[0])
		}
		for _, d := range remote {
			got = append(got, "remote "+strings.Join(d.rcpts, ","))
		}
		slices.Sort(got)
		want := []string{"local joe-info@virt.example", "local joe@example.com", "local u@far.example", "remote u@far.example"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("deliveries %q, want %q", got, want)
		}
	})
}

// VERP: each recipient gets its own sender and its own transaction.
func TestSchedulerVERP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		inject(t, q, "list-owner-@ex.com-@[]", "x\n", "bob@b.org", "carol@b.org")
		synctest.Wait()
		stop()
		_, remote := f.snapshot()
		var senders []string
		for _, d := range remote {
			senders = append(senders, d.sender+" "+strings.Join(d.rcpts, ","))
		}
		slices.Sort(senders)
		if fmt.Sprint(senders) != "[list-owner-bob=b.org@ex.com bob@b.org list-owner-carol=b.org@ex.com carol@b.org]" {
			t.Errorf("%+v", remote)
		}
	})
}

// A stop with deferred work saves the next attempt in the channel file's
// mtime; the next Run resumes at that time, and at once after Flush.
func TestSchedulerRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			if try == 1 {
				return Result{Report: "later\n", Err: errors.New("later")}
			}
			return Result{Report: "ok\n"}
		}}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		start := time.Now()
		id := inject(t, q, "s@x", "x\n", "r@far.example", "l@example.com")
		synctest.Wait()
		stop()
		for _, k := range []string{"local", "remote"} {
			fi, err := os.Stat(q.path(k, id))
			if err != nil {
				t.Fatal(err)
			}
			want := start.Add(100 * time.Second)
			if k == "remote" {
				want = start.Add(400 * time.Second)
			}
			if !fi.ModTime().Equal(want) {
				t.Errorf("%s mtime %v, want %v", k, fi.ModTime().Sub(start), want.Sub(start))
			}
		}
		s2 := f.scheduler(q, &logs)
		stop = startRun(t, s2)
		time.Sleep(150 * time.Second)
		synctest.Wait()
		local, remote := f.snapshot()
		if len(local) != 2 || len(remote) != 1 {
			t.Errorf("after 150s: %d local, %d remote deliveries", len(local), len(remote))
		}
		s2.Flush()
		synctest.Wait()
		stop()
		local, remote = f.snapshot()
		if len(local) != 2 || len(remote) != 2 {
			t.Errorf("after Flush: %d local, %d remote deliveries", len(local), len(remote))
		}
		emptyQueue(t, q)
	})
}

func TestSchedulerRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		var logs syncBuffer
		stop := startRun(t, f.scheduler(q, &logs))
		err := f.scheduler(q, &logs).Run(t.Context())
		if !errors.Is(err, ErrRunning) || !strings.Contains(logs.String(), "alert: cannot start: qmail-send is already running\n") {
			t.Errorf("second Run: %v", err)
		}
		stop()
	})
}

// An injection by another process (here: another Queue value) pulls the
// FIFO; the scheduler notices it at once, long before the rescan.
func TestSchedulerTrigger(t *testing.T) {
	q := openTest(t, Options{Now: time.Now})
	f := &fakes{}
	var logs syncBuffer
	s := f.scheduler(q, &logs)
	s.NoTrigger = false
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	other, err := Open(q.Dir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	inject(t, other, "a@b", "x\n", "c@example.com")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if local, _ := f.snapshot(); len(local) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The startup scan: a message preprocessed by an earlier run, and one left
// with only D records, are finished.
func TestSchedulerStartupScan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		fakeMessage(t, q, 457, 10, time.Now().Unix(), "Fs@x\x00", "Tl@example.com\x00Dd@example.com\x00", "Dr@far.example\x00", false)
		fakeMessage(t, q, 458, 10, time.Now().Unix(), "Fs@x\x00", "", "", false)
		for _, k := range []string{"local", "remote"} { // due now, on the bubble's clock
			os.Chtimes(q.path(k, 457), time.Now(), time.Now())
		}
		f := &fakes{}
		var logs syncBuffer
		stop := startRun(t, f.scheduler(q, &logs))
		stop()
		local, remote := f.snapshot()
		if len(local) != 1 || local[0].rcpts[0] != "l@example.com" || len(remote) != 0 {
			t.Errorf("local %+v remote %+v", local, remote)
		}
		emptyQueue(t, q)
	})
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(NewLogHandler(w, true)) }

// A recipient without a host part is refused as qmail's spawners do, and
// bounced.
func TestSchedulerNoHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		s := f.scheduler(q, &logs)
		s.Routing.EnvNoAtHost = ""
		stop := startRun(t, s)
		inject(t, q, "joe@example.com", "x\n", "nohost")
		synctest.Wait()
		stop()
		local, remote := f.snapshot()
		if len(remote) != 0 || len(local) != 1 || !strings.Contains(local[0].body, "<nohost>:\nSorry, address must include host name. (#5.1.3)\n") {
			t.Errorf("local %+v remote %+v\n%s", local, remote, logs.String())
		}
	})
}

// Stopping while deliveries run: they finish and are recorded; the passes
// not yet started wait for the next Run.
func TestSchedulerStopInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{hold: make(chan struct{})}
		s := f.scheduler(q, &logs)
		s.ConcurrencyLocal = 1
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- s.Run(ctx) }()
		synctest.Wait()
		id := inject(t, q, "s@x", "x\n", "a@example.com", "b@example.com")
		synctest.Wait()
		cancel()
		synctest.Wait()
		f.hold <- struct{}{} // the one in flight finishes
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		recs, err := readRecords(q.path("local", id))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || string(recs[0]) != "Da@example.com" || string(recs[1]) != "Tb@example.com" {
			t.Errorf("records %q", recs)
		}
		if !strings.HasSuffix(logs.String(), "status: local 0/1 remote 0/20 exitasap\nstatus: exiting\n") {
			t.Errorf("log:\n%s", logs.String())
		}
		f.hold = nil
		stop := startRun(t, f.scheduler(q, &logs))
		stop()
		if local, _ := f.snapshot(); len(local) != 2 || local[1].rcpts[0] != "b@example.com" {
			t.Errorf("deliveries %+v\n%s", local, logs.String())
		}
		emptyQueue(t, q)
	})
}

// A success marks its record D in place; a deferral leaves T.
func TestSchedulerMark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			if rcpt == "a@x" {
				return Result{Report: "later\n", Err: errors.New("later")}
			}
			return Result{Report: "ok\n"}
		}}
		s := f.scheduler(q, &logs)
		s.Routing = Routing{}
		stop := startRun(t, s)
		id := inject(t, q, "s@x", "x\n", "a@x", "b@y")
		synctest.Wait()
		stop()
		if got := string(readFile(t, q.path("remote", id))); got != "Ta@x\x00Db@y\x00" {
			t.Errorf("remote file %q", got)
		}
	})
}

func TestConcurrencyLimits(t *testing.T) {
	for _, tc := range []struct{ v, def, want int }{
		{0, 10, 10}, {0, 20, 20}, {5, 10, 5}, {500, 10, MaxConcurrency}, {-1, 10, 0},
	} {
		if got := limit(tc.v, tc.def); got != tc.want {
			t.Errorf("limit(%d, %d) = %d, want %d", tc.v, tc.def, got, tc.want)
		}
	}
	// A channel on hold delivers nothing; the other goes on.
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		s := f.scheduler(q, &logs)
		s.ConcurrencyRemote = -1
		stop := startRun(t, s)
		inject(t, q, "s@x", "x\n", "r@far.example", "l@example.com")
		synctest.Wait()
		time.Sleep(time.Hour)
		synctest.Wait()
		stop()
		local, remote := f.snapshot()
		if len(local) != 1 || len(remote) != 0 || !strings.Contains(logs.String(), "status: local 0/10 remote 0/0\n") {
			t.Errorf("local %d remote %d\n%s", len(local), len(remote), logs.String())
		}
	})
}

// Preprocessing problems are logged as qmail-send's warnings and retried:
// an unknown record type, and a todo entry whose message file is missing.
func TestSchedulerPreprocessWarnings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		os.WriteFile(q.path("mess", 457), []byte("x\n"), 0o644)
		os.WriteFile(q.path("todo", 457), []byte("u1\x00p2\x00Fa@b\x00Xjunk\x00"), 0o644)
		os.WriteFile(q.path("todo", 458), []byte("u1\x00p2\x00Fa@b\x00"), 0o644) // no mess/S/458
		f := &fakes{}
		stop := startRun(t, f.scheduler(q, &logs))
		stop()
		for _, want := range []string{"warning: unknown record type in todo/457\n", "warning: unable to stat mess/21/458\n"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
		// Both stay queued for a later scan.
		if !q.exists("todo", 457) || !q.exists("todo", 458) {
			t.Error("todo entries removed")
		}
	})
}

// A channel file with an unknown record keeps the recipients after it: the
// file is not removed.
func TestSchedulerUnknownRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		fakeMessage(t, q, 457, 10, time.Now().Unix(), "Fs@x\x00", "Ta@example.com\x00Xgarbage\x00Tb@example.com\x00", "", false)
		os.Chtimes(q.path("local", 457), time.Now(), time.Now())
		f := &fakes{}
		stop := startRun(t, f.scheduler(q, &logs))
		stop()
		if !strings.Contains(logs.String(), "warning: unknown record type in local/20/457!\n") {
			t.Errorf("log:\n%s", logs.String())
		}
		if got := string(readFile(t, q.path("local", 457))); got != "Da@example.com\x00Xgarbage\x00Tb@example.com\x00" {
			t.Errorf("local file %q", got)
		}
	})
}

// Bounce.DSN: the bounce is an RFC 3464 report.
func TestSchedulerDSN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			if rcpt == "gone@far.example" {
				return Result{Report: "Remote host said: 550 5.1.1 no such user\n", Err: &PermanentError{"550"}}
			}
			return Result{Report: "did 1+0+0\n"}
		}}
		s := f.scheduler(q, &logs)
		s.Bounce.DSN = true
		stop := startRun(t, s)
		inject(t, q, "joe@example.com", "Subject: dsn\n\nbody\n", "gone@far.example")
		synctest.Wait()
		stop()
		local, _ := f.snapshot()
		if len(local) != 1 || local[0].sender != "" || local[0].rcpts[0] != "joe@example.com" {
			t.Fatalf("%+v", local)
		}
		for _, want := range []string{"Content-Type: multipart/report;", "Final-Recipient: rfc822; gone@far.example\nAction: failed\nStatus: 5.1.1\n", "Subject: dsn\n\nbody\n"} {
			if !strings.Contains(local[0].body, want) {
				t.Errorf("DSN lacks %q:\n%s", want, local[0].body)
			}
		}
	})
}

// A bounce that cannot be injected is kept and retried 123 s later.
func TestSchedulerBounceRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		fakeMessage(t, q, 457, 10, time.Now().Unix(), "Fs@example.com\x00", "", "", true)
		os.Remove(q.path("mess", 457)) // the bounce cannot copy the message
		f := &fakes{}
		stop := startRun(t, f.scheduler(q, &logs))
		time.Sleep(130 * time.Second)
		synctest.Wait()
		stop()
		if n := strings.Count(logs.String(), "warning: trouble injecting bounce message, will try later\n"); n != 2 {
			t.Errorf("%d injection attempts in 130 s, want 2:\n%s", n, logs.String())
		}
		if !q.exists("bounce", 457) || !q.exists("info", 457) {
			t.Error("bounce or info removed after a failed injection")
		}
	})
}

// The 36-hour rule runs at start and every 76431 s.
func TestSchedulerCleanStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		stop := startRun(t, f.scheduler(q, &logs))
		mess := q.path("mess", 49)
		os.WriteFile(mess, []byte("x"), 0o644)
		old := time.Now().Add(-30 * time.Hour) // 36 h old 6 h from now
		os.Chtimes(mess, old, old)
		time.Sleep(CleanInterval - time.Second)
		synctest.Wait()
		if !q.exists("mess", 49) {
			t.Fatal("removed before the next cleanup")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if q.exists("mess", 49) {
			t.Error("stale mess file kept after the cleanup interval")
		}
		stop()
	})
}
