package dotqmail

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/qq"
	"github.com/qmailkit/qmailkit/maildir"
)

// Deliverer runs local deliveries as qmail-local does. The zero value is
// ready to use, except that forwards fail (temporarily) until Forwarder is
// set. A Deliverer may be used by many goroutines at once and must not be
// copied after first use.
//
// A Deliverer runs everything as the user of the current process: the
// [Local] layer decides who that is.
type Deliverer struct {
	// Forwarder queues forwarded messages. nil: a forward line fails with
	// a temporary error and the message waits in the queue.
	Forwarder Forwarder

	// Maildir delivers Maildir lines. nil: an internal zero
	// maildir.Deliverer (modern unique names, not qmail-local's time.pid.host).
	Maildir *maildir.Deliverer

	// Env is what the environment of programs is taken from: only what
	// [AllowedEnv] keeps of it (PATH, TZ, LANG, LC_*, QMAIL*), to which
	// qmail-local's variables are added. nil means the process's
	// environment, whose other variables (root's or the mail server's)
	// never reach users' programs.
	Env []string

	// Shell runs program lines as "Shell -c command"; empty means
	// "/bin/sh".
	Shell string

	// Stdout and Stderr receive what programs print. nil: it is collected
	// into the report (both streams in one, as qmail-lspawn joins them),
	// up to 64 KiB. The qmail-local program sets them to its own
	// descriptors. A program gets an *os.File that is a pipe or a socket
	// as it is; any other writer, a regular file included, through a pipe.
	Stdout, Stderr io.Writer

	// TempDir is where a message that is not a regular file is copied
	// when a program line needs it as its stdin (or when it cannot be
	// re-read in place, or is a file open for writing that cannot be
	// reopened read-only); empty means os.TempDir(). The copy is removed
	// at once and programs get it through a read-only descriptor.
	TempDir string

	// Timeout bounds each delivery, the programs it runs included: when
	// it passes, the running program and every process of its process
	// group are killed with SIGKILL and the message is deferred
	// ("Timeout on program delivery. (#4.3.0)"; "Timeout on delivery.
	// (#4.3.0)" between lines). Zero means DefaultTimeout (1000 seconds,
	// Postfix's command_time_limit); negative means no limit. A Plan is
	// not bounded.
	Timeout time.Duration

	// LockTimeout is how long an mbox delivery waits for the lock; zero
	// means LockTimeout (30 seconds, as qmail-local).
	LockTimeout time.Duration

	// WritableMask holds the mode bits that make a home directory or a
	// .qmail file unsafe (qmail's conf-patrn); zero means 0002,
	// world-writable.
	WritableMask fs.FileMode

	// Now gives the delivery's start time, which goes into UFLINE; nil
	// means time.Now.
	Now func() time.Time

	// Logger receives one debug line per instruction; nil discards.
	Logger *slog.Logger

	md maildir.Deliverer
}

// Result is what a delivery did.
type Result struct {
	// Report is the text qmail-local prints: the collected output of
	// programs (when Stdout and Stderr are nil), then "did F+W+P\n" and
	// "qp <id>\n" after a forward, or the failure's text and "\n". In a
	// Plan it holds the instruction lines and the did line.
	Report string
	// Files, Forwards and Programs count the lines processed, as in
	// "did F+W+P".
	Files, Forwards, Programs int
	// QP is the queue id of the forwarded message, "" when none was sent.
	QP string
	// File is the .qmail file used, relative to the home directory; ""
	// when the default delivery was used.
	File string
}

// Deliver delivers a message to one recipient with a zero Deliverer: no
// Forwarder, so forwards fail temporarily. See [Deliverer.Deliver].
func Deliver(ctx context.Context, t Target, msg io.Reader) (Result, error) {
	var d Deliverer
	return d.Deliver(ctx, t, msg)
}

// Deliver delivers msg to the recipient t as qmail-local(8) does: it checks
// the home directory, refuses a message that already carries the recipient's
// Delivered-To line, finds the .qmail file (or uses t.DefaultDelivery), and
// executes its lines in order. Forwards are collected and sent as one
// message after the last line. The first failing line ends the delivery;
// what earlier lines delivered stays delivered.
//
// msg is read from its start by every line and never held in memory: a
// regular *os.File or an io.ReaderAt with a Size method (io.SectionReader)
// is read in place, any other reader is first copied to a temporary file.
//
// The error, when not nil, is an *Error: permanent (bounce) or temporary
// (retry) as qmail-local's exit code 100 or 111 would say; Result.Report
// then ends with its text.
func (d *Deliverer) Deliver(ctx context.Context, t Target, msg io.Reader) (Result, error) {
	return d.deliver(ctx, t, msg, false)
}

// Plan reports what Deliver would do, as qmail-local -n does (see
// qmail-local(8)): one line per instruction ("maildir ./Maildir/", "mbox
// ./Mailbox", "program cmd", "forward addr") written to Stdout (into
// Result.Report when Stdout is nil), then the did line in Result.Report.
// No message is read or delivered and there is no loop check; a sticky home
// directory is only a warning, "Warning: home directory is sticky.", written
// to Stderr (or into the report); every other safety refusal still applies.
func (d *Deliverer) Plan(ctx context.Context, t Target) (Result, error) {
	return d.deliver(ctx, t, nil, true)
}

// DefaultTimeout bounds a local delivery when [Deliverer.Timeout] or
// [Local.Timeout] is zero: Postfix's command_time_limit. qmail-local has no
// limit at all, and a program that never ends holds a delivery slot for
// good.
const DefaultTimeout = 1000 * time.Second

// limit returns the delivery time limit d (0 means DefaultTimeout), or 0
// for none.
func limit(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultTimeout
	case d < 0:
		return 0
	}
	return d
}

func (d *Deliverer) lockTimeout() time.Duration {
	if d.LockTimeout > 0 {
		return d.LockTimeout
	}
	return LockTimeout
}

func (d *Deliverer) mask() fs.FileMode {
	if d.WritableMask != 0 {
		return d.WritableMask
	}
	return 0o002
}

// run is the state of one delivery.
type run struct {
	d   *Deliverer
	t   Target
	l   lines
	msg *message

	// What a program's environment is made of; built when a program
	// line first runs.
	def       string
	hasDef    bool
	newSender string
	env       []string

	rep            report
	stdout, stderr io.Writer
	res            Result
}

func (d *Deliverer) deliver(ctx context.Context, t Target, r io.Reader, plan bool) (Result, error) {
	if lim := limit(d.Timeout); lim > 0 && !plan {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lim)
		defer cancel()
	}
	x := &run{d: d, t: t}
	x.stdout, x.stderr = d.Stdout, d.Stderr
	if x.stdout == nil {
		x.stdout = &x.rep
	}
	if x.stderr == nil {
		x.stderr = &x.rep
	}
	err := x.do(ctx, r, plan)
	if x.msg != nil {
		x.msg.close()
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Text: "Temporary error. (#4.3.0)", Err: err}
			err = e
		}
		if e.Text != "" {
			x.rep.WriteString(e.Text + "\n")
		}
		x.res.Report = x.rep.String()
		return x.res, err
	}
	x.rep.WriteString("did " + strconv.Itoa(x.res.Files) + "+" + strconv.Itoa(x.res.Forwards) + "+" +
		strconv.Itoa(x.res.Programs) + "\n")
	if x.res.QP != "" {
		x.rep.WriteString("qp " + x.res.QP + "\n")
	}
	x.res.Report = x.rep.String()
	return x.res, nil
}

func (x *run) do(ctx context.Context, r io.Reader, plan bool) error {
	t := x.t
	if !filepath.IsAbs(t.Home) {
		return &Error{Text: "Unable to switch to " + t.Home + ": home directory is not an absolute path. (#4.3.0)"}
	}
	fi, err := os.Stat(t.Home)
	if err == nil && !fi.IsDir() {
		err = &fs.PathError{Op: "chdir", Path: t.Home, Err: syscall.ENOTDIR}
	}
	if err != nil {
		return &Error{Text: "Unable to switch to " + t.Home + ": " + errText(err) + ". (#4.3.0)", Err: err}
	}
	if fi.Mode().Perm()&x.d.mask() != 0 {
		return &Error{Text: "Uh-oh: home directory is writable. (#4.7.0)"}
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		if !plan {
			return &Error{Text: "Home directory is sticky: user is editing his .qmail file. (#4.2.1)"}
		}
		io.WriteString(x.stderr, "Warning: home directory is sticky.\n")
	}
	now := time.Now
	if x.d.Now != nil {
		now = x.d.Now
	}
	x.l = newLines(t, now())

	if !plan {
		tmp := x.d.TempDir
		if x.msg, err = newMessage(r, tmp); err != nil {
			return &Error{Text: "Unable to read message: " + errText(err) + ". (#4.3.0)", Err: err}
		}
		if err := checkLoop(x.msg.reader(), x.l.dt); err != nil {
			return err
		}
	}

	found, err := Find(t.Home, t.Dash, t.Ext)
	notFound := errors.Is(err, fs.ErrNotExist)
	if err != nil && !notFound {
		return err
	}
	// qmail-local checks the mode of the file it finds before anything
	// else (qmeexists).
	if !notFound && found.Mode.Perm()&x.d.mask() != 0 {
		return &Error{Text: "Uh-oh: .qmail file is writable. (#4.7.0)"}
	}
	if notFound && t.Dash != "" {
		return &Error{Text: "Sorry, no mailbox here by that name. (#5.1.1)", Perm: true}
	}
	newSender, err := newSender(t)
	if err != nil {
		return err
	}
	x.def, x.hasDef, x.newSender = found.Default, !notFound && found.HasDefault, newSender

	name, data, forwardOnly := "defaultdelivery", []byte(t.DefaultDelivery), false
	if !notFound && len(found.Data) > 0 {
		name, data, forwardOnly = found.Name, found.Data, found.Mode&0o100 != 0
		x.res.File = found.Name
	}
	ins, err := Parse(name, data)
	if err != nil {
		var pe *ParseError
		errors.As(err, &pe)
		return &Error{Text: pe.Text, File: name, Line: pe.Line, Err: err}
	}
	return x.execute(ctx, name, ins, forwardOnly, newSender, plan)
}

// environ returns the environment of program lines (the variables
// qmail-local sets, see qmail-command(8)), from the allow-list of AllowedEnv.
func (x *run) environ() []string {
	if x.env == nil {
		base := x.d.Env
		if base == nil {
			base = os.Environ()
		}
		x.env = programEnv(base, envOf(x.t, x.l, x.def, x.hasDef, x.newSender))
	}
	return x.env
}

// execute runs the instructions in order, as qmail-local does: the first
// failing one ends the delivery and forwards are sent after the last one.
func (x *run) execute(ctx context.Context, name string, ins []Instruction, forwardOnly bool, newSender string, plan bool) error {
	var forwards []string
	log := x.d.Logger
	for _, in := range ins {
		if err := ctx.Err(); err != nil {
			return &Error{Text: "Timeout on delivery. (#4.3.0)", File: name, Line: in.Line, Err: err}
		}
		if log != nil {
			log.DebugContext(ctx, "dotqmail: instruction", "file", name, "line", in.Line, "kind", in.Kind.String(), "arg", in.Arg)
		}
		var (
			err  error
			stop bool
		)
		switch in.Kind {
		case List:
			forwardOnly = true
			continue
		case Mbox, Maildir:
			x.res.Files++
			if forwardOnly {
				err = &Error{Text: "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)"}
			} else if plan {
				io.WriteString(x.stdout, in.String()+"\n")
			} else if in.Kind == Maildir {
				err = x.maildir(ctx, in.Arg)
			} else {
				err = x.mbox(ctx, x.path(in.Arg), in.Arg)
			}
		case Program:
			x.res.Programs++
			if forwardOnly {
				err = &Error{Text: "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)"}
			} else if plan {
				io.WriteString(x.stdout, in.String()+"\n")
			} else {
				stop, err = x.program(ctx, in.Arg)
			}
		case Forward:
			x.res.Forwards++
			if plan {
				io.WriteString(x.stdout, in.String()+"\n")
			} else {
				forwards = append(forwards, in.Arg)
			}
		}
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.File == "" {
				e.File, e.Line = name, in.Line
			}
			return err
		}
		if stop {
			break
		}
	}
	if len(forwards) > 0 {
		return x.forward(ctx, newSender, forwards)
	}
	return nil
}

// path resolves a file line against the home directory (qmail-local runs
// in it).
func (x *run) path(arg string) string {
	if filepath.IsAbs(arg) {
		return arg
	}
	return filepath.Join(x.t.Home, arg)
}

// maildir delivers into a Maildir line through the maildir package.
func (x *run) maildir(ctx context.Context, arg string) error {
	md := x.d.Maildir
	if md == nil {
		md = &x.d.md
	}
	r := prefixed(x.l.rp+x.l.dt, x.msg.reader())
	_, err := md.Deliver(ctx, maildir.Dir(x.path(arg)), r)
	if err == nil {
		return nil
	}
	var qe *maildir.QuotaError
	var de *maildir.DeliveryError
	switch {
	case errors.As(err, &qe):
		if qe.Permanent() {
			return &Error{Text: "Sorry, mailbox is full. (#5.2.2)", Perm: true, Err: err}
		}
		return &Error{Text: "Mailbox is full. (#4.2.2)", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Text: "Timeout on maildir delivery. (#4.3.0)", Err: err}
	case errors.As(err, &de) && de.Step == "open" && !isTemp(err):
		return &Error{Text: "Unable to chdir to maildir. (#4.2.1)", Err: err}
	case errors.As(err, &de) && de.Step == "read":
		return &Error{Text: "Unable to read message. (#4.3.0)", Err: err}
	}
	return &Error{Text: "Temporary error on maildir delivery. (#4.3.0)", Err: err}
}

// forward sends the collected forwards as one message, with the
// Delivered-To line prepended and sender (NEWSENDER) as envelope sender.
func (x *run) forward(ctx context.Context, sender string, rcpts []string) error {
	if x.d.Forwarder == nil {
		return &Error{Text: "Unable to forward message: no forwarder configured (#4.3.0)."}
	}
	r := prefixed(x.l.dt, x.msg.reader())
	id, err := x.d.Forwarder.Forward(ctx, sender, rcpts, r)
	if oe := (*qq.OpenError)(nil); errors.As(err, &oe) {
		// qmail_open failed: qmail-local's temp_fork.
		return &Error{Text: "Unable to fork: " + errText(oe.Err) + ". (#4.3.0)", Err: err}
	}
	if err != nil {
		return &Error{Text: "Unable to forward message: " + forwardText(err) + ".", Perm: ExitCode(err) == 100, Err: err}
	}
	x.res.QP = id
	return nil
}

// checkLoop scans the message header for the recipient's Delivered-To line
// as qmail-local does: lines up to the first one of at most one byte (the
// empty line) or the end, compared byte for byte, newline included.
func checkLoop(r io.Reader, dt string) error {
	size := 4096
	if len(dt) >= size {
		size = len(dt) + 1
	}
	br := bufio.NewReaderSize(r, size)
	long := false // inside a line longer than the buffer
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = true
			continue
		}
		if err == io.EOF {
			return nil // a last line without '\n' ends the scan, as in qmail-local
		}
		if err != nil {
			return &Error{Text: "Unable to read message: " + errText(err) + ". (#4.3.0)", Err: err}
		}
		if long {
			long = false
			continue
		}
		if len(line) <= 1 {
			return nil
		}
		if len(line) == len(dt) && string(line) == dt {
			return &Error{Text: "This message is looping: it already has my Delivered-To line. (#5.4.6)", Perm: true}
		}
	}
}

// newSender computes NEWSENDER as qmail-local does: the sender, unless it
// is neither empty nor #@[] and the .qmail-ext-owner file exists; then
// local-owner@domain, or local-owner-@domain-@[] (VERP) when
// .qmail-ext-owner-default exists too.
func newSender(t Target) (string, error) {
	if t.Sender == "" || t.Sender == "#@[]" {
		return t.Sender, nil
	}
	q := ".qmail" + t.Dash + MapExt(t.Ext) + "-owner"
	ok, err := exists(t.Home, q)
	if err != nil || !ok {
		return t.Sender, err
	}
	ok, err = exists(t.Home, q+"-default")
	if err != nil {
		return t.Sender, err
	}
	if ok {
		return t.Local + "-owner-@" + t.Domain + "-@[]", nil
	}
	return t.Local + "-owner@" + t.Domain, nil
}

func exists(home, name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, nil
	}
	_, err := os.Stat(filepath.Join(home, name))
	if err == nil {
		return true, nil
	}
	if isTemp(err) {
		return false, &Error{Text: "Unable to open " + name + ": " + errText(err) + ". (#4.3.0)", Err: err}
	}
	return false, nil
}

// reportLimit bounds the program output a report collects. qmail-lspawn
// keeps the first 2966 bytes of a long report; keeping more costs nothing
// that matters and keeps whole lines for a Go caller.
const reportLimit = 64 << 10

// report collects program output up to reportLimit, then the final text.
type report struct {
	buf     bytes.Buffer
	dropped bool
}

func (r *report) Write(p []byte) (int, error) {
	if room := reportLimit - r.buf.Len(); room < len(p) {
		if room > 0 {
			r.buf.Write(p[:room])
		}
		r.dropped = true
		return len(p), nil
	}
	return r.buf.Write(p)
}

// WriteString adds qmail-local's own text, which is never dropped.
func (r *report) WriteString(s string) { r.buf.WriteString(s) }

func (r *report) String() string { return r.buf.String() }
