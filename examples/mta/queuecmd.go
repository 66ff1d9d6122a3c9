package main

// The queue command: mta [-home DIR] queue SUBCOMMAND [ARGS].
//
//	mta queue list [-sender SUBSTR] [-recipient SUBSTR] [-held] [-older DURATION] [-json]
//	mta queue show ID...
//	mta queue hold ID...
//	mta queue release ID...
//	mta queue delete ID...
//	mta queue flush [ID...]
//	mta queue requeue ID...
//
// In the spirit of Postfix's postqueue and postsuper: list (postqueue -p,
// -j with -json) shows each queued message: its ID (qmail's #N), arrival
// time (UTC), size, sender, whether it is held, queued (not yet
// preprocessed) or bouncing, its next attempt, and its recipients with
// their channel and state (pending, or done: delivered, or failed and
// recorded for the bounce). The filters keep the messages whose sender,
// or one of whose recipients, contains SUBSTR (ASCII case ignored), the
// held ones, and those that arrived more than DURATION ago; they combine.
// -json prints one JSON object per line, with the fields id (string),
// arrival (RFC 3339), size (bytes), sender, recipients (a list of
// {address, channel: "local"|"remote" (absent while queued), state:
// "pending"|"done"}), held, queued, bouncing (booleans), next_attempt (RFC
// 3339; absent when none is scheduled) and active (deliveries in
// progress). show prints a message's envelope summary, a blank line, then
// the message as stored (qmail-queue's Received line first). hold keeps a
// message from delivery until release (postsuper -h/-H; a held message
// does not expire while held); delete removes it without a bounce
// (postsuper -d), once the deliveries in progress have ended; flush makes
// the messages named (without IDs: every message) due now (postqueue -f,
// -i); requeue routes the pending remote recipients again with the current
// control/locals and virtualdomains and makes the message due now
// (postsuper -r).
//
// The command talks to the running mta over QMAILHOME/run/queue-admin.sock
// (as root, or as the account the mta runs as); when no mta answers there,
// it works on the queue itself, holding lock/sendmutex so that no mta
// starts meanwhile (as root, with the queue owner's uid and gid, so that
// the files it makes are the mta's); a flush then makes the messages due
// when the mta starts.
//
// Exit status: 0 when everything was done; 1 when some ID was not found or
// its operation failed (each is named on standard error); 2 for a usage
// error; 111 for a temporary failure that kept the command from working at
// all (the mta runs but did not answer, the queue is locked by another
// scheduler, a timeout), as qmail's programs exit 111.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/queueadmin"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/mta/privsep"
	"github.com/qmailkit/qmailkit/queue"
)

const queueUsage = `usage: mta [-home DIR] queue list [-sender SUBSTR] [-recipient SUBSTR] [-held] [-older DURATION] [-json]
       mta [-home DIR] queue show ID...
       mta [-home DIR] queue hold|release|delete|requeue ID...
       mta [-home DIR] queue flush [ID...]
`

// queueTimeout bounds a queue command (a delete waits for the deliveries
// in progress).
const queueTimeout = 5 * time.Minute

// defaultHome is the home the mta uses when -home is not given.
func defaultHome(home string, getenv func(string) string) string {
	switch {
	case home != "":
	case getenv("QMAILHOME") != "":
		home = getenv("QMAILHOME")
	case os.Getuid() == 0:
		home = "/var/lib/qmailkit"
	case getenv("HOME") != "":
		home = filepath.Join(getenv("HOME"), ".qmailkit")
	}
	return home
}

// queueCommand runs "mta queue ARGS" on home's queue and returns the exit
// status.
func queueCommand(home string, args []string, stdout, stderr io.Writer) int {
	usage := func(msg string) int {
		if msg != "" {
			fmt.Fprintln(stderr, "mta queue: "+msg)
		}
		fmt.Fprint(stderr, queueUsage)
		return 2
	}
	if home == "" {
		return usage("no -home, $QMAILHOME or $HOME")
	}
	if len(args) == 0 {
		return usage("")
	}
	op, args := args[0], args[1:]
	ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
	defer cancel()
	c := &queueCmd{home: home, stdout: stdout, stderr: stderr,
		client: &queueadmin.Client{Path: queueadmin.SocketPath(home), Timeout: queueTimeout - 5*time.Second}}
	switch op {
	case "list":
		return c.list(ctx, args, usage)
	case "show", "hold", "release", "delete", "requeue", "flush":
		if len(args) > 0 && strings.HasPrefix(args[0], "-") {
			return usage("unknown option " + args[0])
		}
		if len(args) == 0 && op != "flush" {
			return usage(op + " needs message IDs")
		}
		if len(args) > queueadmin.MaxIDs {
			return usage(fmt.Sprintf("at most %d IDs at once", queueadmin.MaxIDs))
		}
		ids := make([]queue.ID, len(args))
		for i, a := range args {
			id, err := queueadmin.ParseID(strings.TrimPrefix(a, "#"))
			if err != nil {
				return usage(err.Error())
			}
			ids[i] = id
		}
		if op == "show" {
			return c.show(ctx, ids)
		}
		return c.do(ctx, op, ids)
	}
	return usage("unknown subcommand " + op)
}

type queueCmd struct {
	home           string
	stdout, stderr io.Writer
	client         *queueadmin.Client
}

func (c *queueCmd) fail(err error) int {
	fmt.Fprintln(c.stderr, "mta queue: "+err.Error())
	return 111
}

// offline opens the queue for work without the mta: as root, with the
// queue owner's uid and gid.
func (c *queueCmd) offline(readOnly bool) (*queue.Queue, error) {
	dir := filepath.Join(c.home, "queue")
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Getuid() == 0 && st.Uid != 0 && !readOnly {
		if err := privsep.Drop(int(st.Uid), int(st.Gid)); err != nil {
			return nil, err
		}
	}
	return queue.Open(dir, queue.Options{ReadOnly: readOnly, NoCreate: true, NoClean: true})
}

func (c *queueCmd) list(ctx context.Context, args []string, usage func(string) int) int {
	fs := flag.NewFlagSet("mta queue list", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	sender := fs.String("sender", "", "only messages whose sender contains SUBSTR")
	rcpt := fs.String("recipient", "", "only messages with a recipient that contains SUBSTR")
	held := fs.Bool("held", false, "only held messages")
	older := fs.Duration("older", 0, "only messages that arrived more than DURATION ago")
	asJSON := fs.Bool("json", false, "one JSON object per message and line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		return usage("list takes no IDs (use show)")
	}
	ms, err := c.client.List(ctx)
	if errors.Is(err, queueadmin.ErrNoServer) {
		var q *queue.Queue
		if q, err = c.offline(true); err == nil {
			var es []queue.Entry
			es, err = q.List(ctx)
			ms = ms[:0]
			for _, e := range es {
				ms = append(ms, queueadmin.FromEntry(e))
			}
		}
	}
	if err != nil {
		return c.fail(err)
	}
	now := time.Now()
	bw := bufio.NewWriter(c.stdout)
	defer bw.Flush()
	enc := json.NewEncoder(bw)
	for _, m := range ms {
		if *sender != "" && !containsFold(m.Sender, *sender) ||
			*held && !m.Held ||
			*older > 0 && now.Sub(m.Arrival) <= *older {
			continue
		}
		if *rcpt != "" && !hasRecipient(m, *rcpt) {
			continue
		}
		if *asJSON {
			enc.Encode(m)
		} else {
			writeEntry(bw, m)
		}
	}
	if err := bw.Flush(); err != nil {
		return c.fail(err)
	}
	return 0
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func hasRecipient(m queueadmin.Message, sub string) bool {
	for _, r := range m.Recipients {
		if containsFold(r.Address, sub) {
			return true
		}
	}
	return false
}

// writeEntry writes a message as list shows it: a line with its ID,
// arrival, size, sender and state, then a line per recipient.
func writeEntry(w io.Writer, m queueadmin.Message) {
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{m.Held, "held"}, {m.Queued, "queued"}, {m.Bouncing, "bouncing"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	if m.Active > 0 {
		flags = append(flags, fmt.Sprintf("delivering(%d)", m.Active))
	}
	if m.NextAttempt != nil {
		flags = append(flags, "next "+m.NextAttempt.Format(time.DateTime))
	}
	fmt.Fprintf(w, "%-12s %s  %8d  <%s>  %s\n", m.ID, m.Arrival.Format(time.DateTime), m.Size, printable(m.Sender), strings.Join(flags, " "))
	for _, r := range m.Recipients {
		ch := r.Channel
		if ch == "" {
			ch = "-"
		}
		fmt.Fprintf(w, "    %-7s %-6s %s\n", r.State, ch, printable(r.Address))
	}
}

// printable maps bytes outside 32..126 to "_", as qmail-qread does, so
// that an address cannot write to the terminal.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}

func (c *queueCmd) show(ctx context.Context, ids []queue.ID) int {
	ms, errs, err := c.client.Show(ctx, ids)
	var q *queue.Queue
	if errors.Is(err, queueadmin.ErrNoServer) {
		if q, err = c.offline(true); err == nil {
			var es []queue.Entry
			es, errs = q.Show(ids)
			ms = make([]queueadmin.Message, len(ids))
			for i, e := range es {
				ms[i] = queueadmin.FromEntry(e)
			}
		}
	} else if err == nil {
		q, err = queue.Open(filepath.Join(c.home, "queue"), queue.Options{ReadOnly: true})
	}
	if err != nil {
		return c.fail(err)
	}
	code := 0
	bw := bufio.NewWriter(c.stdout)
	defer bw.Flush()
	for i, id := range ids {
		if errs[i] != nil {
			bw.Flush()
			fmt.Fprintf(c.stderr, "mta queue: %s: %v\n", id, errs[i])
			code = 1
			continue
		}
		m := ms[i]
		fmt.Fprintf(bw, "id: %s\narrival: %s\nsize: %d\nsender: <%s>\nheld: %v\nqueued: %v\nbouncing: %v\n",
			m.ID, m.Arrival.Format(time.RFC3339), m.Size, printable(m.Sender), m.Held, m.Queued, m.Bouncing)
		if m.NextAttempt != nil {
			fmt.Fprintf(bw, "next attempt: %s\n", m.NextAttempt.Format(time.RFC3339))
		}
		for _, r := range m.Recipients {
			fmt.Fprintf(bw, "recipient: %s %s %s\n", r.State, cmpOr(r.Channel, "-"), printable(r.Address))
		}
		bw.WriteString("\n")
		f, err := os.Open(filepath.Join(q.Dir(), queue.Path("mess", id, q.Split())))
		if err == nil {
			_, err = io.Copy(bw, f)
			f.Close()
		}
		if err != nil {
			bw.Flush()
			fmt.Fprintf(c.stderr, "mta queue: %s: %v\n", id, err)
			code = 1
		}
	}
	if err := bw.Flush(); err != nil {
		return c.fail(err)
	}
	return code
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// do carries out hold, release, delete, flush or requeue.
func (c *queueCmd) do(ctx context.Context, op string, ids []queue.ID) int {
	errs, err := c.client.Do(ctx, op, ids)
	if errors.Is(err, queueadmin.ErrNoServer) {
		errs, err = c.doOffline(op, ids)
		if errors.Is(err, queue.ErrRunning) {
			err = fmt.Errorf("a scheduler holds the queue but no mta answers on %s: %w", c.client.Path, err)
		}
	}
	if err != nil {
		return c.fail(err)
	}
	code := 0
	for i, id := range ids {
		if errs[i] != nil {
			fmt.Fprintf(c.stderr, "mta queue: %s %s: %v\n", op, id, errs[i])
			code = 1
		}
	}
	return code
}

func (c *queueCmd) doOffline(op string, ids []queue.ID) ([]error, error) {
	q, err := c.offline(false)
	if err != nil {
		return nil, err
	}
	switch op {
	case "hold":
		return q.Hold(ids)
	case "release":
		return q.Release(ids)
	case "delete":
		return q.Delete(ids)
	case "flush":
		return q.Flush(ids)
	case "requeue":
		r, err := mta.Routing(control.Dir{Home: c.home})
		if err != nil {
			return nil, err
		}
		return q.Requeue(r, ids)
	}
	return nil, fmt.Errorf("unknown operation %s", op)
}
