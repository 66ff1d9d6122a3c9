package assign

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/internal/durable"
)

// Compile reads an assign file from src and installs the users/cdb it
// describes at path, as qmail-newu does: the records go to path+".tmp"
// (created or truncated, mode 0644 before the umask) while src is read,
// then the file is fsynced, closed, renamed over path, and the directory is
// fsynced. Only then has path changed; on any error path is untouched and
// the temporary file is removed.
//
// Memory stays bounded whatever the size of src: one line is held at a
// time, plus 8 bytes per record for the hash tables (as in every cdb
// writer).
//
// Errors: a *[SyntaxError] (errors.Is [ErrSyntax]) for a malformed file,
// else an *fs.PathError whose Op says which step failed, in qmail-newu's
// terms: "create" (path+".tmp" could not be made), "read" (src), "write"
// (writing, fsync or close of path+".tmp") or "rename".
func Compile(path string, src io.Reader) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return wrapOp("create", tmp, err)
	}
	if err := compileTo(f, src); err != nil {
		f.Close()
		os.Remove(tmp)
		return wrapErr(err, tmp)
	}
	if err := durable.SyncClose(f); err != nil {
		os.Remove(tmp)
		return wrapOp("write", tmp, err)
	}
	if err := durable.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return wrapOp("rename", path, err)
	}
	return nil
}

// CompileFile compiles the assign file at src into the users/cdb at dst,
// like [Compile]; an assign file that cannot be opened gives an
// *fs.PathError with Op "open", before dst+".tmp" is touched (qmail-newu's
// order).
func CompileFile(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return wrapOp("open", src, err)
	}
	defer f.Close()
	return Compile(dst, f)
}

// writeErr marks an error of the cdb writer, so that it is reported as a
// "write" of the temporary file rather than a read of the source.
type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }
func (e writeErr) Unwrap() error { return e.err }

func wrapOp(op, path string, err error) error {
	return fmt.Errorf("assign: compile: %w", &fs.PathError{Op: op, Path: path, Err: err})
}

func wrapErr(err error, tmp string) error {
	if w, ok := err.(writeErr); ok {
		return wrapOp("write", tmp, w.err)
	}
	return err // a *SyntaxError, or the scanner's read *fs.PathError
}

// noCloser hides the file's Close from cdb.Writer.Close, which then only
// writes the tables and the header: the fsync and close are ours.
type noCloser struct{ io.WriteSeeker }

// compileTo writes the cdb for src to ws.
func compileTo(ws io.WriteSeeker, src io.Reader) error {
	w, err := cdb.NewWriter(noCloser{ws}, nil)
	if err != nil {
		return writeErr{err}
	}
	if err := build(w, NewScanner(src)); err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return writeErr{err}
	}
	return nil
}

// build adds one record per line, then the wildchars record.
func build(w *cdb.Writer, s *Scanner) error {
	var seen [256]bool
	var wildchars []byte
	for s.Scan() {
		r := &s.rec
		if err := w.Put(r.key, r.value); err != nil {
			return writeErr{err}
		}
		// qmail-newu: the last byte of a non-empty '+' prefix as written
		// (not lower-cased), each byte once, in order of first appearance.
		if r.wild && len(r.local) > 0 {
			if c := r.local[len(r.local)-1]; !seen[c] {
				seen[c] = true
				wildchars = append(wildchars, c)
			}
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	if err := w.Put(nil, wildchars); err != nil {
		return writeErr{err}
	}
	return nil
}
