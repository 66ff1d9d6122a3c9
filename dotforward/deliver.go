package dotforward

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/internal/qq"
)

// Forwarder injects a message into the queue, as dot-forward does through
// qmail-queue: it reads r to its end, queues it for the recipients with
// the envelope sender, and returns the queue's id ("qp"). An error is
// permanent when it has a Permanent() bool method returning true; its
// text (the Text of a *dotqmail.ForwardError, else Error()) follows
// "unable to forward message: ". dotqmail.QueueProgram satisfies it by
// running $QMAILQUEUE or QMAILHOME/bin/qmail-queue.
type Forwarder interface {
	Forward(ctx context.Context, sender string, recipients []string, r io.Reader) (id string, err error)
}

// Deliverer does what dot-forward does for the files of one delivery. The
// zero value reads files, but forwards fail (temporarily) until
// Forwarder is set.
type Deliverer struct {
	Config

	// Sender is the envelope sender of forwarded mail ($NEWSENDER).
	Sender string
	// UFLine, RPLine and DTLine are qmail-local's From_, Return-Path and
	// Delivered-To lines ($UFLINE, $RPLINE, $DTLINE), each with its
	// newline: programs get all three before the message, forwarded mail
	// gets DTLine.
	UFLine, RPLine, DTLine string

	// Forwarder queues forwarded mail; nil makes a forward fail with
	// "unable to run qmail-queue: no forwarder" (temporary).
	Forwarder Forwarder

	// Dir is the directory relative file names are opened in and programs
	// run in; "" means the current directory.
	Dir string
	// Shell runs program entries as "Shell -c command"; "" means /bin/sh.
	Shell string
	// Env is the environment of programs; nil means the process's.
	Env []string
	// Stdout and Stderr receive what programs print; nil discards it.
	Stdout, Stderr io.Writer

	// MaxForward bounds the bytes of the recipient addresses one file
	// forwards to (each address and a byte more); more fails as
	// dot-forward fails when it runs out of memory ("out of memory",
	// temporary). Zero means DefaultMaxForward; negative means no limit.
	MaxForward int
}

// DefaultMaxForward is the limit on one file's recipient addresses when
// Deliverer.MaxForward is zero: 16 MiB, some hundred thousand addresses.
const DefaultMaxForward = 16 << 20

// Result is what a delivery or a plan decided.
type Result struct {
	// Code is dot-forward's exit code: 0 when the message is still to be
	// delivered normally (a file asked for direct delivery, or no file
	// applied), 99 when the file took care of it (qmail-local then skips
	// the following lines of the .qmail file).
	Code int
	// File is the file that decided, "" when none did.
	File string
	// Forwards are the addresses forwarded to, in order.
	Forwards []string
	// QP is the queue's id for the forwarded message, "" when none was
	// sent.
	QP string
}

// Error is a failed delivery: dot-forward's exit code 100 (permanent) or
// 111 (temporary) and its message.
type Error struct {
	// Text is dot-forward's message after "dot-forward: fatal: ", such
	// as "unable to open .forward: access denied". It is empty when a
	// program's exit code decided: dot-forward then prints nothing.
	Text string
	Perm bool
	Err  error // the cause, when there is one
}

func (e *Error) Error() string {
	s := "dotforward: " + e.Text
	if e.Text == "" {
		s = "dotforward: program failed"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether the failure is permanent (exit 100).
func (e *Error) Permanent() bool { return e.Perm }

// ExitCode returns dot-forward's exit code for a delivery that returned
// res and err: res.Code when err is nil, else 100 for a permanent failure
// and 111 for any other.
func ExitCode(res Result, err error) int {
	if err == nil {
		return res.Code
	}
	if qmailkit.IsPermanent(err) {
		return 100
	}
	return 111
}

// Deliver does what dot-forward does for files (named relative to Dir)
// and the message msg, read from its current offset: it tries the files
// in order, skipping missing ones. In a file, each program entry runs at
// once (see [Deliverer]), its stdin a pipe carrying UFLine, RPLine,
// DTLine and the message, and msg is rewound after it; its exit code 0
// goes on, 100, 64, 65, 70, 76, 77, 78 and 112 fail permanently, any
// other fails temporarily. After the file, its forward addresses get one
// message, DTLine and msg, from Sender. A file with a Direct entry then
// gives Code 0; a file that forwarded or ran a program Code 99; a file
// with no entry is skipped. After the last file, Code 0.
//
// The error, when not nil, is an *Error.
func (d *Deliverer) Deliver(ctx context.Context, files []string, msg io.ReadSeeker) (Result, error) {
	return d.run(ctx, files, msg, nil)
}

// Plan reports what Deliver would do, as dot-forward -n does, one line
// for each step written to w: "forward ADDR", "pipe through COMMAND",
// "skipping empty file FILE", "direct delivery". Nothing is run or sent;
// errors in the files are reported as by Deliver.
func (d *Deliverer) Plan(ctx context.Context, files []string, w io.Writer) (Result, error) {
	return d.run(ctx, files, nil, w)
}

func (d *Deliverer) run(ctx context.Context, files []string, msg io.ReadSeeker, plan io.Writer) (Result, error) {
	for _, name := range files {
		res, done, err := d.file(ctx, name, msg, plan)
		if err != nil || done {
			return res, err
		}
	}
	if plan != nil {
		io.WriteString(plan, "direct delivery\n")
	}
	return Result{}, nil
}

// file handles one file (dot-forward's try); done is false when the file
// is missing or had no entry.
func (d *Deliverer) file(ctx context.Context, name string, msg io.ReadSeeker, plan io.Writer) (Result, bool, error) {
	path := name
	if d.Dir != "" && !filepath.IsAbs(name) {
		path = filepath.Join(d.Dir, name)
	}
	f, err := openFile(path)
	if errors.Is(err, syscall.ENOENT) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, &Error{Text: "unable to open " + name + ": " + errstr.Text(err), Err: err}
	}
	res := Result{File: name}
	var (
		acted, direct bool
		size          int
	)
	limit := d.MaxForward
	if limit == 0 {
		limit = DefaultMaxForward
	}
	// A long file is read to its end unless ctx ends first.
	r := readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return f.Read(p)
	})
	err = d.Parse(r, func(e Entry) error {
		switch e.Kind {
		case Direct:
			acted, direct = true, true
		case Program:
			acted = true
			if plan != nil {
				io.WriteString(plan, "pipe through "+e.Arg+"\n")
				return nil
			}
			return d.program(ctx, e.Arg, msg)
		case Forward:
			if size += len(e.Arg) + 1; limit > 0 && size > limit {
				return &Error{Text: "out of memory", Err: errors.New("dotforward: " + name + ": too many addresses")}
			}
			res.Forwards = append(res.Forwards, e.Arg)
			if plan != nil {
				io.WriteString(plan, "forward "+e.Arg+"\n")
			}
		}
		return nil
	})
	f.close()
	if err != nil {
		return res, true, fileError(name, err)
	}
	if len(res.Forwards) > 0 {
		acted = true
		if plan == nil {
			if res.QP, err = d.forward(ctx, res.Forwards, msg); err != nil {
				return res, true, err
			}
		}
	}
	switch {
	case direct:
		if plan != nil {
			io.WriteString(plan, "direct delivery\n")
		}
		return res, true, nil
	case !acted:
		if plan != nil {
			io.WriteString(plan, "skipping empty file "+name+"\n")
		}
		return Result{}, false, nil
	}
	res.Code = 99
	return res, true, nil
}

// fileError turns what ended the reading of a file into dot-forward's
// message.
func fileError(name string, err error) error {
	var (
		e  *Error
		pe *ParseError
		fe *FileError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &pe):
		return &Error{Text: "unable to parse this line: " + pe.Text, Err: err}
	case errors.As(err, &fe):
		return &Error{Text: "file delivery " + fe.Path + " not supported", Err: err}
	case errors.Is(err, ErrLineTooLong):
		return &Error{Text: "out of memory", Err: err}
	}
	return &Error{Text: "unable to read " + name + ": " + errstr.Text(err), Err: err}
}

// forward injects DTLine and the rest of msg for the recipients.
func (d *Deliverer) forward(ctx context.Context, rcpts []string, msg io.Reader) (string, error) {
	if d.Forwarder == nil {
		return "", &Error{Text: "unable to run qmail-queue: no forwarder"}
	}
	id, err := d.Forwarder.Forward(ctx, d.Sender, rcpts, io.MultiReader(strings.NewReader(d.DTLine), msg))
	if oe := (*qq.OpenError)(nil); errors.As(err, &oe) { // qmail_open failed
		return "", &Error{Text: "unable to run qmail-queue: " + errstr.Text(oe.Err), Err: err}
	}
	if err != nil {
		text := err.Error()
		var fe *dotqmail.ForwardError
		if errors.As(err, &fe) {
			text = fe.Text
		}
		return "", &Error{Text: "unable to forward message: " + text, Perm: dotqmail.ExitCode(err) == 100, Err: err}
	}
	return id, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
