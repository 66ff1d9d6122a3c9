package dotqmail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
)

// groupGone waits up to 10 seconds for the process group pgid to have no
// living member: kill(-pgid, 0) fails with ESRCH, or only zombies not yet
// reaped by init are left. It returns the pids still running.
func groupGone(t *testing.T, pgid int) []int {
	t.Helper()
	var alive []int
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		alive = mailtest.GroupMembers(pgid)
		if len(alive) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return alive
}

// readPgid reads the process group a program wrote ("echo $$ > pgid":
// the shell leads its own group).
func readPgid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pgid <= 1 {
		t.Fatalf("pgid file %q", b)
	}
	return pgid
}

// hangers are programs that do not end by themselves: a plain sleep, and
// one that ignores SIGTERM and leaves children, in the background and in
// a pipeline, behind it.
var hangers = []struct{ name, line string }{
	{"sleep", "|echo $$ > pgid; sleep 100\n"},
	{"ignores TERM, with children", "|echo $$ > pgid; trap '' TERM; sleep 100 & sleep 100 | cat; wait\n"},
}

// TestProgramTimeout is issue 17's finding 3 for programs: a program run
// from a .qmail line held its delivery slot for ever. With a 1 s limit it
// is killed with its whole process group and the delivery deferred.
func TestProgramTimeout(t *testing.T) {
	for _, tt := range hangers {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.d.Timeout = time.Second
			e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-x", "-", "x"
			e.qmail(".qmail-x", tt.line+"./Mailbox\n", 0o644)
			start := time.Now()
			err := promptly(t, "Deliver", func() error { _, err := e.deliver("m\n"); return err })
			if d := time.Since(start); d < time.Second {
				t.Errorf("delivery ended after %v, before its 1s limit", d)
			}
			wantErr(t, err, 111, "Timeout on program delivery. (#4.3.0)")
			if left := groupGone(t, readPgid(t, filepath.Join(e.home, "pgid"))); left != nil {
				t.Errorf("processes %v of the program's group survived", left)
			}
			if e.read("Mailbox") != "" {
				t.Error("the next line ran")
			}
		})
	}
}

// TestProgramCancel: cancelling a delivery (the mta stopping) kills the
// program's whole process group too, whatever it does with SIGTERM.
func TestProgramCancel(t *testing.T) {
	e := newEnv(t)
	e.qmail(".qmail", hangers[1].line, 0o644)
	ctx, cancel := context.WithCancel(t.Context())
	pgidFile := filepath.Join(e.home, "pgid")
	go func() {
		for i := 0; i < 100; i++ {
			if b, _ := os.ReadFile(pgidFile); len(b) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // let it start its children
		cancel()
	}()
	err := promptly(t, "Deliver", func() error { _, err := e.d.Deliver(ctx, e.tg, strings.NewReader("m\n")); return err })
	wantErr(t, err, 111, "Aack, child crashed. (#4.3.0)")
	if left := groupGone(t, readPgid(t, pgidFile)); left != nil {
		t.Errorf("processes %v of the program's group survived", left)
	}
}

func TestTimeoutLimit(t *testing.T) {
	for _, tt := range []struct{ in, want time.Duration }{
		{0, 1000 * time.Second}, {-1, 0}, {time.Minute, time.Minute},
	} {
		if got := limit(tt.in); got != tt.want {
			t.Errorf("limit(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	// A negative Timeout: the program runs to its end.
	e := newEnv(t)
	e.d.Timeout = -1
	e.qmail(".qmail", "|sleep 1; echo done\n", 0o644)
	if res, err := e.deliver("m\n"); err != nil || res.Report != "done\ndid 0+0+1\n" {
		t.Errorf("no limit: %q, %v", res.Report, err)
	}
}
