package tcprules

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

// Compile reads a rules file and returns the cdb tcprules would write for
// it, byte for byte. A line tcprules refuses gives a *ParseError.
func Compile(rules io.Reader) ([]byte, error) {
	var buf memFile
	w, err := cdb.NewWriter(&buf, nil)
	if err != nil {
		return nil, err
	}
	if err := put(w, rules); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("tcprules: %w", err)
	}
	return buf.b, nil
}

// CompileFile is "tcprules CDB TMP": it creates (or truncates) tmp, writes
// the cdb for rules into it, fsyncs it and renames it to path, then fsyncs
// the directory. On any error path is left untouched and tmp is removed
// (tcprules leaves it behind). The error is a *ParseError for a refused line,
// and otherwise a *FileError naming the step that failed.
func CompileFile(path, tmp string, rules io.Reader) error {
	w, err := cdb.CreateTemp(path, tmp)
	if err != nil {
		return &FileError{Op: OpCreate, Path: tmp, Err: unwrapOS(err)}
	}
	if err := put(w, rules); err != nil {
		w.Abort()
		var fe *FileError
		if errors.As(err, &fe) && fe.Op == OpWrite {
			fe.Path = tmp
		}
		return err
	}
	if err := w.Close(); err != nil {
		os.Remove(tmp) // gone already if only the directory fsync failed
		var le *os.LinkError
		if errors.As(err, &le) {
			return &FileError{Op: OpRename, Path: tmp, Err: le.Err}
		}
		return &FileError{Op: OpWrite, Path: tmp, Err: unwrapOS(err)}
	}
	return nil
}

// put adds every key of every rule of r to w, in input order.
func put(w *cdb.Writer, r io.Reader) error {
	var val []byte
	err := scan(r, func(rule *Rule) error {
		val = rule.appendValue(val[:0])
		for _, k := range rule.Keys {
			if err := w.Put([]byte(k), val); err != nil {
				return &FileError{Op: OpWrite, Err: unwrapOS(err)}
			}
		}
		return nil
	})
	var re *readError
	if errors.As(err, &re) {
		return &FileError{Op: OpRead, Err: re.err}
	}
	return err
}

// FileOp names the step of CompileFile that failed, as tcprules words it.
type FileOp string

// The steps of CompileFile, in tcprules' words.
const (
	OpCreate FileOp = "unable to create"
	OpRead   FileOp = "unable to read input"
	OpWrite  FileOp = "unable to write to"
	OpRename FileOp = "unable to move"
)

// FileError is a failure of CompileFile other than a refused line: creating
// or writing the temporary file, reading the rules, or renaming. It is
// temporary (tcprules exits 111).
type FileError struct {
	Op   FileOp
	Path string // the temporary file, when the step has one
	Err  error
}

func (e *FileError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("tcprules: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("tcprules: %s %s: %v", e.Op, e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// unwrapOS digs out the system error under cdb's wrapping, so that a
// program can print it the way djb's tools do.
func unwrapOS(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var re *readError
	if errors.As(err, &re) {
		return re.err
	}
	return err
}

// memFile is an in-memory io.WriteSeeker for Compile.
type memFile struct {
	b   []byte
	off int
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := m.off + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[m.off:], p)
	m.off += len(p)
	return len(p), nil
}

func (m *memFile) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = int64(m.off) + offset
	case io.SeekEnd:
		abs = int64(len(m.b)) + offset
	default:
		return 0, errors.New("tcprules: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("tcprules: negative seek")
	}
	m.off = int(abs)
	return abs, nil
}
