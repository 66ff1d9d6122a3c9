package aliases

import (
	"errors"
	"io"
	"os"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/internal/durable"
)

// Record is one record of fastforward's database. Key is ":" or "?" and
// a lower-cased address; Data is a sequence of NUL-terminated instructions
// for ":" keys and the new envelope sender for "?" keys.
type Record struct {
	Key, Data string
}

// Error is a failure of one of fastforward's programs or of the library
// behind them. Text is the message the program prints after its
// "PROGRAM: fatal: " prefix (for system errors the caller appends ": " and
// the error's text, as djb's strerr_die*sys does); Err is the system error,
// nil for a syntax error.
type Error struct {
	Text string
	Err  error
	// Perm is true when the program exits 100 (permanent failure) rather
	// than 111.
	Perm bool
}

// Error is the text with "aliases: " before it and the system error after.
func (e *Error) Error() string {
	if e.Err != nil {
		return "aliases: " + e.Text + ": " + e.Err.Error()
	}
	return "aliases: " + e.Text
}

// Unwrap returns the system error.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether the failure is permanent (exit 100).
func (e *Error) Permanent() bool { return e.Perm }

func permErr(text string) *Error { return &Error{Text: text, Perm: true} }
func tempErr(text string) *Error { return &Error{Text: text} }
func sysErr(text string, err error) *Error {
	return &Error{Text: text, Err: err}
}

// nomem is what fastforward's programs print when they cannot hold their
// input; ours say it when an input passes the configured limit.
func nomem() *Error { return tempErr("out of memory") }

// Writer writes a fastforward database (a cdb) to a temporary file and
// installs it in [Writer.Close] after fsync, as newaliases and setforward
// do. Records are written in the order they are put, so that the file is
// byte-identical to what fastforward's programs write for the same input.
type Writer struct {
	f         *os.File
	w         *cdb.Writer
	path, tmp string
	done      bool
}

// seeker hides the file's Close from cdb.Writer, so that Close can fsync
// the file before closing it.
type seeker struct{ io.WriteSeeker }

// Create starts a database that Close renames from tmp to path. tmp is
// created or truncated with mode 0644 (less the umask). Errors are *Error
// with the programs' texts: "unable to create TMP", "unable to write to
// TMP", "unable to move TMP to PATH".
func Create(path, tmp string) (*Writer, error) {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, sysErr("unable to create "+tmp, unwrapPath(err))
	}
	w, err := cdb.NewWriter(seeker{f}, nil)
	if err != nil {
		f.Close()
		return nil, sysErr("unable to write to "+tmp, unwrapPath(err))
	}
	return &Writer{f: f, w: w, path: path, tmp: tmp}, nil
}

// NewWriter writes a database to ws, which must be positioned where the
// database begins (normally an empty file or buffer). Close finishes it;
// there is no temporary file, fsync or rename.
func NewWriter(ws io.WriteSeeker) (*Writer, error) {
	w, err := cdb.NewWriter(seeker{ws}, nil)
	if err != nil {
		return nil, sysErr("unable to write database", err)
	}
	return &Writer{w: w, tmp: "database"}, nil
}

// Put appends a record.
func (w *Writer) Put(r Record) error {
	if err := w.w.Put([]byte(r.Key), []byte(r.Data)); err != nil {
		return sysErr("unable to write to "+w.tmp, unwrapPath(err))
	}
	return nil
}

// Close finishes the database, fsyncs and closes the temporary file and
// renames it over path (then fsyncs the directory).
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	if err := w.w.Close(); err != nil {
		if w.f != nil {
			w.f.Close()
		}
		return sysErr("unable to write to "+w.tmp, unwrapPath(err))
	}
	if w.f == nil {
		return nil
	}
	return install(w.f, w.tmp, w.path)
}

// Abort gives the database up: the temporary file is closed and left, as
// fastforward's programs leave it when they die.
func (w *Writer) Abort() {
	if !w.done && w.f != nil {
		w.f.Close()
	}
	w.done = true
}

// install fsyncs and closes f (written at tmp) and renames tmp to path.
func install(f *os.File, tmp, path string) error {
	if err := durable.SyncClose(f); err != nil {
		return sysErr("unable to write to "+tmp, unwrapPath(err))
	}
	if err := durable.Rename(tmp, path); err != nil {
		return sysErr("unable to move "+tmp+" to "+path, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the path of an *os.PathError or *os.LinkError, which
// the message already names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
