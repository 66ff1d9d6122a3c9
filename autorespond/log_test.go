package autorespond

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRateWindow: at most Max replies per sender in any Interval, counted
// per sender in any case; suppressed messages count too, and entries
// older than the window are removed.
func TestRateWindow(t *testing.T) {
	dir := t.TempDir()
	c := &clock{epoch}
	r := &Responder{Body: "b", Dir: dir, Interval: time.Hour, Max: 2, Now: c.now, PID: 1}
	send := func(sender string) Reason {
		t.Helper()
		res, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: sender, Recipient: "joe@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		return res.Reason
	}
	steps := []struct {
		after  time.Duration
		sender string
		want   Reason
	}{
		{0, "bob@example.org", Replied},
		{10 * time.Minute, "BOB@example.org", Replied}, // the same sender in another case
		{10 * time.Minute, "carol@example.org", Replied},
		{10 * time.Minute, "bob@example.org", TooMany},
		// 61 minutes after the first: the first has left the window, but
		// the suppressed one at 30 minutes is still in it.
		{31 * time.Minute, "bob@example.org", TooMany},
		// Two hours later everything has expired.
		{2 * time.Hour, "bob@example.org", Replied},
	}
	for i, s := range steps {
		c.t = c.t.Add(s.after)
		if got := send(s.sender); got != s.want {
			t.Errorf("step %d (%v %s): %v, want %v", i, c.t.Sub(epoch), s.sender, got, s.want)
		}
	}
	// Only the last entry is left: the others were older than an hour.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries left: %v", len(ents), ents)
	}
}

// TestDefaultLimit: modern mode answers a sender once per 7 days, and a
// message not answered is logged too: the next reply comes 7 days after
// the last message, not after the last reply.
func TestDefaultLimit(t *testing.T) {
	c := &clock{epoch}
	r := &Responder{Body: "b", Dir: t.TempDir(), Now: c.now}
	env := Envelope{Sender: "bob@example.org", Recipient: "joe@example.com"}
	day := 24 * time.Hour
	for _, s := range []struct {
		at   time.Duration
		want Reason
	}{
		{0, Replied},
		{6 * day, TooMany},
		{7*day + time.Second, TooMany}, // the message of day 6 is in the window
		{14*day + 2*time.Second, Replied},
	} {
		c.t = epoch.Add(s.at)
		res, err := r.Respond(t.Context(), strings.NewReader("\n"), env)
		if err != nil {
			t.Fatal(err)
		}
		if res.Reason != s.want {
			t.Errorf("at %v: %v, want %v", s.at, res.Reason, s.want)
		}
	}
}

// TestSameSecond: one process logging several messages in a second gets
// distinct entries, all counted.
func TestSameSecond(t *testing.T) {
	dir := t.TempDir()
	r := &Responder{Compat: true, Dir: dir, Interval: time.Hour, Max: 2, PID: 5, Now: func() time.Time { return epoch }}
	var got []Reason
	for range 3 {
		res, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "bob@example.org"})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.Reason)
	}
	if got[0] != Replied || got[1] != Replied || got[2] != TooMany {
		t.Errorf("%v", got)
	}
	base := "A5." + strconv.FormatInt(epoch.Unix(), 10)
	for _, n := range []string{base, base + ".1", base + ".2"} {
		if b, err := os.ReadFile(filepath.Join(dir, n)); err != nil || string(b) != "bob@example.org" {
			t.Errorf("%s: %q %v", n, b, err)
		}
	}
}

// TestExistingLog: entries written by autorespond (other pids, times in
// the window and out of it, other senders, junk names) are read as it
// read them.
func TestExistingLog(t *testing.T) {
	dir := t.TempDir()
	now := epoch.Unix()
	files := map[string]string{
		"A100." + strconv.FormatInt(now-10, 10):           "bob@example.org",
		"A101." + strconv.FormatInt(now-3599, 10):         "Bob@Example.org",
		"A102." + strconv.FormatInt(now-3601, 10):         "bob@example.org", // expired: removed
		"A103." + strconv.FormatInt(now-5, 10) + "junk":   "bob@example.org", // leading digits
		"A104." + strconv.FormatInt(now-5, 10):            "carol@example.org",
		"A105":                                            "bob@example.org", // no '.': ignored, kept
		"B106." + strconv.FormatInt(now, 10):              "bob@example.org", // not 'A': ignored, kept
		"tmp107." + strconv.FormatInt(now, 10):            "x",
		"Aold.x":                                          "bob@example.org",   // time 0: removed
		"A108." + strconv.FormatInt(now-1, 10) + ".extra": "bob@example.org\n", // not equal
	}
	for n, c := range files {
		os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600)
	}
	count, full, err := record(dir, "bob@example.org", epoch, time.Hour, 1, 100)
	if err != nil || full {
		t.Fatal(err, full)
	}
	if count != 4 { // A100, A101, A103 and the new one
		t.Errorf("count %d, want 4", count)
	}
	for _, gone := range []string{"A102." + strconv.FormatInt(now-3601, 10), "Aold.x"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s not removed", gone)
		}
	}
	for _, kept := range []string{"A105", "B106." + strconv.FormatInt(now, 10)} {
		if _, err := os.Lstat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s removed", kept)
		}
	}
}

// TestHostileLog: a log directory holding symbolic links (to a file
// holding the sender, to a FIFO, to a directory, dangling), a FIFO and a
// directory with entry names: none is followed or blocks, none counts,
// and an expired link is removed without touching its target.
func TestHostileLog(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	now := strconv.FormatInt(epoch.Unix(), 10)
	old := strconv.FormatInt(epoch.Unix()-7200, 10)
	target := filepath.Join(outside, "addr")
	os.WriteFile(target, []byte("bob@example.org"), 0o600)
	fifo := filepath.Join(outside, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(target, filepath.Join(dir, "A1."+now))
	os.Symlink(fifo, filepath.Join(dir, "A2."+now))
	os.Symlink(outside, filepath.Join(dir, "A3."+now))
	os.Symlink("/nonexistent", filepath.Join(dir, "A4."+now))
	if err := syscall.Mkfifo(filepath.Join(dir, "A5."+now), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "A6."+now), 0o700)
	os.Symlink(target, filepath.Join(dir, "A7."+old))
	os.Mkdir(filepath.Join(dir, "A8."+old), 0o700)

	done := make(chan struct{})
	var count int
	var err error
	go func() {
		defer close(done)
		count, _, err = record(dir, "bob@example.org", epoch, time.Hour, 9, 100)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("record blocked (on a FIFO?)")
	}
	if err != nil || count != 1 {
		t.Fatalf("count %d, err %v: only the new entry counts", count, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "A7."+old)); err == nil {
		t.Error("expired link kept")
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "bob@example.org" {
		t.Error("link target touched")
	}
	if _, err := os.Stat(filepath.Join(dir, "A8."+old)); err != nil {
		t.Error("a directory was removed")
	}
	// The new entry is not created through a link planted at its name.
	planted := filepath.Join(outside, "planted")
	os.Symlink(planted, filepath.Join(dir, "A10."+now))
	if _, _, err := record(dir, "bob@example.org", epoch, time.Hour, 10, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(planted); err == nil {
		t.Error("entry created through a planted link")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "A10."+now+".1")); string(b) != "bob@example.org" {
		t.Errorf("entry beside the planted link: %q", b)
	}
}

// TestHugeLog: a directory of 100,000 entries is examined only up to
// MaxEntries: no reply (LogFull), bounded work, and the expired entries
// among those examined are removed, so the directory shrinks.
func TestHugeLog(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 100,000 files")
	}
	dir := t.TempDir()
	old := strconv.FormatInt(epoch.Unix()-7200, 10)
	// Hard links, the quickest way to make the entries, of a new file
	// every 50,000 (a file system's limit on links may be 65,000).
	var first string
	for i := range 100000 {
		name := filepath.Join(dir, "A"+strconv.Itoa(i)+"."+old)
		var err error
		if i%50000 == 0 {
			first = name
			err = os.WriteFile(name, []byte("bob@example.org"), 0o600)
		} else {
			err = os.Link(first, name)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r := &Responder{Body: "b", Dir: dir, Interval: time.Hour, MaxEntries: 1000, Now: func() time.Time { return epoch }}
	start := time.Now()
	res, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "bob@example.org", Recipient: "joe@example.com"})
	if err != nil || res.Reason != LogFull {
		t.Fatalf("%+v %v", res, err)
	}
	t.Logf("one message against 100,000 entries: %v", time.Since(start))
	ents, _ := os.ReadDir(dir)
	if n := len(ents); n > 100000-990 || n < 100000-1001 {
		t.Errorf("%d entries left, want about 99,000 (1000 examined and removed, one added)", n)
	}
}
