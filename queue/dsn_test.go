package queue

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseNotify(t *testing.T) {
	tests := []struct {
		in   string
		want Notify
		ok   bool
	}{
		{"NEVER", NotifyNever, true},
		{"never", NotifyNever, true},
		{"SUCCESS", NotifySuccess, true},
		{"failure,Delay", NotifyFailure | NotifyDelay, true},
		{"SUCCESS,FAILURE,DELAY", NotifySuccess | NotifyFailure | NotifyDelay, true},
		{"", 0, false},
		{"NEVER,SUCCESS", 0, false},
		{"SUCCESS,SUCCESS", 0, false},
		{"SUCCESS,", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseNotify(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseNotify(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if tt.ok {
			if again, err := ParseNotify(got.String()); err != nil || again != got {
				t.Errorf("ParseNotify(%q.String()=%q) = %v, %v", tt.in, got.String(), again, err)
			}
		}
	}
}

// The DSN parameters are stored in dsn/N, read back after the queue is
// opened again; a message without them has exactly qmail's files.
func TestDSNStored(t *testing.T) {
	dir := t.TempDir() + "/queue"
	q, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{Sender: "s@example.org", Recipients: []string{"a@example.com", "b@example.com", "c@example.com"},
		DSN: &DSN{Ret: "HDRS", EnvID: "QQ314", Recipients: []RecipientDSN{{Notify: NotifyNever}, {}, {Notify: NotifySuccess | NotifyDelay, ORcpt: "rfc822;C@example.com"}}}}
	id, err := q.Inject(t.Context(), env, strings.NewReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := q.Inject(t.Context(), Envelope{Sender: "s@example.org", Recipients: []string{"a@example.com"}, DSN: &DSN{Recipients: []RecipientDSN{{}}}}, strings.NewReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "RHDRS\x00EQQ314\x00Ta@example.com\x00NNEVER\x00Tc@example.com\x00NSUCCESS,DELAY\x00Orfc822;C@example.com\x00"
	if got := string(readFile(t, q.path("dsn", id))); got != want {
		t.Errorf("dsn file %q, want %q", got, want)
	}
	if fi, err := os.Stat(q.path("dsn", id)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dsn file mode: %v %v", fi, err)
	}
	if q.exists("dsn", plain) {
		t.Error("a message without DSN parameters has a dsn file")
	}
	q2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := q2.readDSN(id)
	if err != nil {
		t.Fatal(err)
	}
	wantRcpts := map[string]RecipientDSN{"a@example.com": {Notify: NotifyNever}, "c@example.com": {Notify: NotifySuccess | NotifyDelay, ORcpt: "rfc822;C@example.com"}}
	if d.ret != "HDRS" || d.envid != "QQ314" || !reflect.DeepEqual(d.rcpts, wantRcpts) {
		t.Errorf("read back %+v", d)
	}
	// The envelope itself is qmail's.
	if got := string(readFile(t, q.path("todo", id))); !strings.HasSuffix(got, "Fs@example.org\x00Ta@example.com\x00Tb@example.com\x00Tc@example.com\x00") {
		t.Errorf("todo %q", got)
	}
}

// Parameters a report must not carry are refused with qmail-queue's 91.
func TestDSNRefused(t *testing.T) {
	q := openTest(t, Options{})
	for _, d := range []*DSN{
		{EnvID: "a\x00b"},
		{EnvID: "a\r\nBcc: x"},
		{Ret: "ALL"},
		{Recipients: []RecipientDSN{{ORcpt: "rfc822;a\nb"}}},
		{Recipients: []RecipientDSN{{Notify: NotifyNever | NotifySuccess}}},
		{Recipients: []RecipientDSN{{}, {}}}, // more than recipients
		{EnvID: strings.Repeat("x", MaxAddressLen+1)},
	} {
		_, err := q.Inject(t.Context(), Envelope{Sender: "s@x", Recipients: []string{"a@x"}, DSN: d}, strings.NewReader("x\n"))
		var qe *Error
		if !errors.As(err, &qe) || qe.Code != 91 {
			t.Errorf("%+v: %v, want exit 91", d, err)
		}
	}
	if _, err := q.EnqueueDSN(t.Context(), "s@x", []string{"a@x"}, nil, []map[string]string{{"NOTIFY": "NEVER,SUCCESS"}}, strings.NewReader("x\n")); err == nil {
		t.Error("EnqueueDSN took NOTIFY=NEVER,SUCCESS")
	}
	emptyQueue(t, q)
}

// parseReport reads an RFC 3464 report: its per-message fields and one
// map per recipient, and the third part's content type and body.
func parseReport(t *testing.T, body string) (msgFields map[string]string, rcpts []map[string]string, third string, thirdBody string) {
	t.Helper()
	_, rest, _ := strings.Cut(body, "\n") // qmail-queue's Received line
	m, err := mail.ReadMessage(strings.NewReader(rest))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("content type %q %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []string
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, string(b))
		types = append(types, p.Header.Get("Content-Type"))
	}
	if len(parts) != 3 || types[1] != "message/delivery-status" {
		t.Fatalf("parts %q", types)
	}
	groups := strings.Split(strings.TrimSpace(strings.ReplaceAll(parts[1], "\r\n", "\n")), "\n\n")
	field := func(g string) map[string]string {
		out := map[string]string{}
		for l := range strings.SplitSeq(g, "\n") {
			k, v, _ := strings.Cut(l, ":")
			out[k] = strings.TrimSpace(v)
		}
		return out
	}
	msgFields = field(groups[0])
	for _, g := range groups[1:] {
		rcpts = append(rcpts, field(g))
	}
	return msgFields, rcpts, types[2], parts[2]
}

// The scheduler honours the parameters: NOTIFY=NEVER and NOTIFY without
// FAILURE send no bounce, ENVID and ORCPT reach the RFC 3464 report (even
// with Bounce.DSN off), RET=HDRS returns the header only, NOTIFY=SUCCESS
// gets "delivered" for a local delivery and "relayed" for a remote one
// the deliverer did not pass on, and the deliverer gets the parameters.
func TestSchedulerDSNParams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			switch rcpt {
			case "never@far.example", "nofail@far.example", "gone@far.example":
				return Result{Report: "Remote host said: 550 no such user (#5.1.1)\n", Err: &PermanentError{"550"}}
			case "passed@far.example":
				return Result{Report: "Remote host said: 250 ok\n", DSNPassed: true}
			case "relay@far.example":
				return Result{Report: "Remote host said: 250 ok\n"}
			}
			return Result{Report: "did 1+0+0\n"}
		}}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		rcpts := []string{"never@far.example", "nofail@far.example", "gone@far.example", "ok@example.com", "relay@far.example", "passed@far.example", "plain@example.com"}
		d := &DSN{Ret: "HDRS", EnvID: "env-1", Recipients: []RecipientDSN{
			{Notify: NotifyNever},
			{Notify: NotifySuccess | NotifyDelay},
			{Notify: NotifyFailure, ORcpt: "rfc822;Gone@Far.example"},
			{Notify: NotifySuccess, ORcpt: "rfc822;ok@example.com"},
			{Notify: NotifySuccess},
			{Notify: NotifySuccess},
		}}
		id, err := q.Inject(t.Context(), Envelope{Sender: "joe@example.com", Recipients: rcpts, DSN: d}, strings.NewReader("Subject: dsn\n\nsecret body\n"))
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
		local, remote := f.snapshot()
		if len(remote) != 1 {
			t.Fatalf("remote deliveries %+v", remote)
		}
		rd := remote[0]
		if rd.dsn == nil || rd.dsn.Ret != "HDRS" || rd.dsn.EnvID != "env-1" || len(rd.dsn.Recipients) != len(rd.rcpts) {
			t.Fatalf("remote delivery DSN %+v", rd.dsn)
		}
		for i, r := range rd.rcpts {
			if want := d.Recipients[slices.Index(rcpts, r)]; rd.dsn.Recipients[i] != want {
				t.Errorf("%s: DSN %+v, want %+v", r, rd.dsn.Recipients[i], want)
			}
		}
		var bounces, notices []sent
		for _, l := range local {
			switch {
			case l.sender == "" && strings.Contains(l.body, "Subject: failure notice"):
				bounces = append(bounces, l)
			case l.sender == "":
				notices = append(notices, l)
			}
		}
		if len(bounces) != 1 || len(notices) != 2 {
			t.Fatalf("%d bounces, %d notices; local %+v", len(bounces), len(notices), local)
		}
		mf, rs, third, body := parseReport(t, bounces[0].body)
		if mf["Original-Envelope-Id"] != "env-1" || len(rs) != 1 {
			t.Errorf("bounce fields %v %v", mf, rs)
		}
		if r := rs[0]; r["Original-Recipient"] != "rfc822;Gone@Far.example" || r["Final-Recipient"] != "rfc822; gone@far.example" || r["Action"] != "failed" || r["Status"] != "5.1.1" {
			t.Errorf("bounce recipient %v", r)
		}
		if third != "text/rfc822-headers" || strings.Contains(body, "secret body") || !strings.Contains(body, "Subject: dsn") {
			t.Errorf("RET=HDRS returned %s %q", third, body)
		}
		actions := map[string]string{}
		for _, n := range notices {
			mf, rs, third, body := parseReport(t, n.body)
			if mf["Original-Envelope-Id"] != "env-1" || third != "text/rfc822-headers" || strings.Contains(body, "secret") {
				t.Errorf("notice %v %s %q", mf, third, body)
			}
			for _, r := range rs {
				actions[r["Final-Recipient"]] = r["Action"] + " " + r["Status"] + " " + r["Original-Recipient"]
			}
		}
		want := map[string]string{"rfc822; ok@example.com": "delivered 2.0.0 rfc822;ok@example.com", "rfc822; relay@far.example": "relayed 2.0.0 "}
		if !reflect.DeepEqual(actions, want) {
			t.Errorf("notices %v, want %v", actions, want)
		}
		if !strings.Contains(logs.String(), "(no report: NOTIFY=NEVER)") || !strings.Contains(logs.String(), "(no report: NOTIFY=SUCCESS,DELAY)") {
			t.Errorf("log:\n%s", logs.String())
		}
		_ = id
		emptyQueue(t, q)
	})
}

// NOTIFY=DELAY: one "delayed" notification once the recipient has been
// deferred for DelayNotice, not repeated after a restart; the parameters
// survive the restart (read from dsn/N of a preprocessed message) and the
// final failure's report carries the ORCPT.
func TestSchedulerDSNDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		fail := false
		f := &fakes{answer: func(rcpt string, try int) Result {
			if strings.HasSuffix(rcpt, "@far.example") {
				if fail {
					return Result{Report: "Remote host said: 550 5.1.2 gone\n", Err: &PermanentError{"550"}}
				}
				return Result{Report: "Remote host said: 451 later (#4.4.1)\n", Err: errors.New("451")}
			}
			return Result{Report: "did 1+0+0\n"}
		}}
		s := f.scheduler(q, &logs)
		s.DelayNotice = time.Hour
		stop := startRun(t, s)
		d := &DSN{Recipients: []RecipientDSN{{Notify: NotifyDelay | NotifyFailure, ORcpt: "rfc822;orig@x.example"}, {}}}
		if _, err := q.Inject(t.Context(), Envelope{Sender: "joe@example.com", Recipients: []string{"slow@far.example", "quiet@far.example"}, DSN: d}, strings.NewReader("Subject: d\n\nx\n")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		stop()
		countDelay := func() int {
			local, _ := f.snapshot()
			n := 0
			for _, l := range local {
				if strings.Contains(l.body, "Subject: delay notice") {
					n++
					_, rs, _, _ := parseReport(t, l.body)
					if len(rs) != 1 || rs[0]["Action"] != "delayed" || rs[0]["Status"] != "4.4.1" || rs[0]["Final-Recipient"] != "rfc822; slow@far.example" || rs[0]["Original-Recipient"] != "rfc822;orig@x.example" {
						t.Errorf("delay notice %v", rs)
					}
				}
			}
			return n
		}
		if n := countDelay(); n != 1 {
			t.Fatalf("%d delay notices, want 1\n%s", n, logs.String())
		}
		// A new scheduler, a new routing of nothing new: still one notice,
		// then the failure is reported with the ORCPT.
		s2 := f.scheduler(q, &logs)
		s2.DelayNotice = time.Hour
		stop = startRun(t, s2)
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := countDelay(); n != 1 {
			t.Fatalf("%d delay notices after restart, want 1", n)
		}
		fail = true
		s2.Flush()
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
		local, _ := f.snapshot()
		var bounce *sent
		for i := range local {
			if strings.Contains(local[i].body, "Subject: failure notice") {
				bounce = &local[i]
			}
		}
		if bounce == nil {
			t.Fatalf("no bounce:\n%s", logs.String())
		}
		_, rs, third, _ := parseReport(t, bounce.body)
		if len(rs) != 2 || third != "message/rfc822" {
			t.Fatalf("bounce %v %s", rs, third)
		}
		for _, r := range rs {
			want := ""
			if r["Final-Recipient"] == "rfc822; slow@far.example" {
				want = "rfc822;orig@x.example"
			}
			if r["Original-Recipient"] != want {
				t.Errorf("bounce recipient %v", r)
			}
		}
		emptyQueue(t, q)
	})
}

// A bounce (null sender) and a double bounce never cause notifications,
// whatever their parameters, and a failure with NOTIFY=NEVER of a bounce
// still goes to the postmaster, as qmail's double bounce.
func TestSchedulerDSNNullSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, try int) Result {
			if rcpt == "gone@example.com" {
				return Result{Report: "no (#5.1.1)\n", Err: &PermanentError{"no"}}
			}
			return Result{Report: "did 1+0+0\n"}
		}}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		d := &DSN{Recipients: []RecipientDSN{{Notify: NotifySuccess | NotifyDelay}, {Notify: NotifyNever}}}
		if _, err := q.Inject(t.Context(), Envelope{Sender: "", Recipients: []string{"ok@example.com", "gone@example.com"}, DSN: d}, strings.NewReader("x\n")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		stop()
		local, _ := f.snapshot()
		if len(local) != 3 || local[2].rcpts[0] != "postmaster@example.com" {
			t.Fatalf("local deliveries %+v", local)
		}
		emptyQueue(t, q)
	})
}

// A dsn/N left by a crash (no todo/N, info/S/N or mess/S/N) is removed
// when a scheduler starts; one of a live injection is not.
func TestDSNOrphan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		if err := os.WriteFile(q.path("dsn", 12345), []byte("RHDRS\x00"), 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := q.Create(t.Context(), Origin{})
		if err != nil {
			t.Fatal(err)
		}
		live := q.path("dsn", w.ID())
		if err := os.WriteFile(live, []byte("RHDRS\x00"), 0o600); err != nil {
			t.Fatal(err)
		}
		f := &fakes{}
		stop := startRun(t, f.scheduler(q, &logs))
		stop()
		if q.exists("dsn", 12345) {
			t.Error("orphan dsn file kept")
		}
		if !q.exists("dsn", w.ID()) {
			t.Error("a live injection's dsn file removed")
		}
		w.Abort()
		os.Remove(live)
	})
}

// A thousand recipients, each with a 500-byte ORCPT: stored and given to
// the deliverer in one transaction.
func TestSchedulerDSNManyRecipients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		s := f.scheduler(q, &logs)
		s.RemoteBatch = 1000
		stop := startRun(t, s)
		var rcpts []string
		d := &DSN{}
		for i := range 1000 {
			r := "r" + strings.Repeat("x", i%50) + itoa(i) + "@far.example"
			rcpts = append(rcpts, r)
			d.Recipients = append(d.Recipients, RecipientDSN{Notify: NotifyFailure, ORcpt: "rfc822;" + strings.Repeat("o", 493)})
		}
		if _, err := q.Inject(context.Background(), Envelope{Sender: "joe@example.com", Recipients: rcpts, DSN: d}, strings.NewReader("x\n")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		stop()
		_, remote := f.snapshot()
		if len(remote) != 1 || len(remote[0].dsn.Recipients) != 1000 || remote[0].dsn.Recipients[999] != d.Recipients[999] {
			t.Fatalf("%d remote deliveries", len(remote))
		}
		emptyQueue(t, q)
	})
}

// FuzzDSNFile reads any dsn/N content without failing, and round-trips
// any DSN the queue accepts through the file.
func FuzzDSNFile(f *testing.F) {
	f.Add([]byte("RHDRS\x00EQQ\x00Ta@b\x00NNEVER\x00Orfc822;a@b\x00Ya@b\x00"), "x", "SUCCESS,DELAY")
	f.Add([]byte("T\x00N\x00O"), "", "NEVER,SUCCESS")
	q, err := Open(f.TempDir()+"/queue", Options{NoClean: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, orcpt, notify string) {
		if err := os.WriteFile(q.path("dsn", 1), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := q.readDSN(1); err != nil {
			t.Fatal(err)
		}
		n, err := ParseNotify(notify)
		if err != nil {
			return
		}
		d := &DSN{Recipients: []RecipientDSN{{Notify: n, ORcpt: orcpt}}}
		env := Envelope{Sender: "s@x", Recipients: []string{"a@x"}, DSN: d}
		if checkEnvelope(env) != nil {
			return
		}
		if err := os.WriteFile(q.path("dsn", 2), dsnRecords(env), 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := q.readDSN(2)
		if err != nil {
			t.Fatal(err)
		}
		if got := back.rcpts["a@x"]; got != d.Recipients[0] && d.Recipients[0] != (RecipientDSN{}) {
			t.Fatalf("round trip %+v, want %+v", got, d.Recipients[0])
		}
	})
}

// TestReadDSNHostile: a dsn/N that is a FIFO (no writer, or one that never
// writes), a symlink or a directory is an error at once, neither waited
// on nor followed.
func TestReadDSNHostile(t *testing.T) {
	q, err := Open(t.TempDir()+"/queue", Options{NoClean: true})
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir() + "/outside"
	if err := os.WriteFile(outside, []byte("Ta@b\x00NSUCCESS\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(p string) error
	}{
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o600) }},
		{"fifo with a writer", func(p string) error {
			if err := unix.Mkfifo(p, 0o600); err != nil {
				return err
			}
			w, err := os.OpenFile(p, os.O_RDWR, 0) // a writer that never writes
			if err != nil {
				return err
			}
			t.Cleanup(func() { w.Close() })
			return nil
		}},
		{"symlink", func(p string) error { return os.Symlink(outside, p) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := q.path("dsn", 7)
			os.RemoveAll(p)
			if err := tc.make(p); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := q.readDSN(7)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("readDSN read it")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("readDSN blocks")
			}
		})
	}
}
