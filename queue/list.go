package queue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/qmailkit/qmailkit/internal/errstr"
)

// Recipient is one record of a message's local or remote channel file.
type Recipient struct {
	Addr   string
	Remote bool // in remote/S/N, else local/S/N
	Done   bool // a D record: delivered, or failed and recorded for the bounce
}

// Message describes a preprocessed message, as qmail-qread shows it.
type Message struct {
	ID         ID
	Birth      time.Time // the mtime of info/S/N
	Size       int64     // the size of mess/S/N, Received line included
	Sender     string
	Bouncing   bool // bounce/N exists
	Recipients []Recipient
}

// Messages lists the preprocessed messages (those with an info/S/N file), in
// split-directory order and then directory order, as qmail-qread does. A
// message that cannot be read is yielded with its ID and an error that
// wraps the file system's error; the listing goes on.
func (q *Queue) Messages() iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		for s := 0; s < q.split; s++ {
			d := filepath.Join(q.dir, "info", strconv.Itoa(s))
			f, err := os.Open(d)
			if err != nil {
				if !yield(Message{}, fmt.Errorf("queue: list: %w", err)) {
					return
				}
				continue
			}
			names, err := f.Readdirnames(-1) // directory order, as readsubdir
			f.Close()
			if err != nil && !yield(Message{}, fmt.Errorf("queue: list: %w", err)) {
				return
			}
			for _, name := range names {
				id, ok := parseNum(name)
				if !ok {
					continue
				}
				m, err := q.Message(id)
				if !yield(m, err) {
					return
				}
			}
		}
	}
}

// Message reads what the queue holds about preprocessed message id.
func (q *Queue) Message(id ID) (Message, error) {
	m := Message{ID: id}
	fi, err := os.Stat(q.path("mess", id))
	if err != nil {
		return m, fmt.Errorf("queue: message %s: %w", id, err)
	}
	m.Size = fi.Size()
	_, err = os.Stat(q.path("bounce", id))
	m.Bouncing = err == nil
	info, err := os.ReadFile(q.path("info", id))
	if err != nil {
		return m, fmt.Errorf("queue: message %s: %w", id, err)
	}
	if fi, err := os.Stat(q.path("info", id)); err == nil {
		m.Birth = fi.ModTime()
	}
	if len(info) > 0 && info[0] == 'F' {
		sender, _, _ := bytes.Cut(info[1:], []byte{0})
		m.Sender = string(sender)
	}
	for _, remote := range []bool{false, true} {
		kind := "local"
		if remote {
			kind = "remote"
		}
		recs, err := readRecords(q.path(kind, id))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return m, fmt.Errorf("queue: message %s: %w", id, err)
		}
		for _, r := range recs {
			switch r[0] {
			case 'T', 'D':
				m.Recipients = append(m.Recipients, Recipient{Addr: string(r[1:]), Remote: remote, Done: r[0] == 'D'})
			}
		}
	}
	return m, nil
}

// readRecords reads the NUL-terminated records of a channel file; an
// unterminated last record is dropped (a crash can leave one).
func readRecords(p string) ([][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs [][]byte
	br := bufio.NewReader(f)
	for {
		rec, err := br.ReadBytes(0)
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		if len(rec) > 1 {
			recs = append(recs, rec[:len(rec)-1])
		}
	}
}

// Stats are qmail-qstat's two counts.
type Stats struct {
	Messages    int // entries under mess/S/: messages in the queue
	Unprocessed int // entries in todo/: messages not yet preprocessed
}

// Stat counts the queue's messages as qmail-qstat does (find | wc -l),
// except the slots that q holds (see "Slots" in the package
// documentation): they are not messages. Counted from another process,
// as by examples/qmail-qstat, they are.
func (q *Queue) Stat() (Stats, error) {
	var st Stats
	// count counts the entries under dir but those named in skip.
	count := func(dir string, skip map[string]struct{}) (int, error) {
		n := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if _, skipped := skip[d.Name()]; p != dir && !skipped {
				n++
			}
			return nil
		})
		return n, err
	}
	slots := q.slotNames()
	ents, err := os.ReadDir(filepath.Join(q.dir, "mess"))
	if err != nil {
		return st, fmt.Errorf("queue: stat: %w", err)
	}
	for _, e := range ents {
		n, err := count(filepath.Join(q.dir, "mess", e.Name()), slots)
		if err != nil {
			return st, fmt.Errorf("queue: stat: %w", err)
		}
		st.Messages += n
	}
	st.Unprocessed, err = count(filepath.Join(q.dir, "todo"), nil)
	if err != nil {
		return st, fmt.Errorf("queue: stat: %w", err)
	}
	return st, nil
}

// WriteQstat writes qmail-qstat's output for st.
func WriteQstat(w io.Writer, st Stats) error {
	_, err := fmt.Fprintf(w, "messages in queue: %d\nmessages in queue but not yet preprocessed: %d\n", st.Messages, st.Unprocessed)
	return err
}

// WriteQread writes qmail-qread's listing of q to w: for each message a line
// "DATE GMT  #N  SIZE  <SENDER> " (plus " bouncing"), then one line per
// recipient, "\tlocal\tADDR" or "\tremote\tADDR", prefixed by "  done" when
// done; bytes outside 32..126 of addresses print as "_". A message that
// cannot be read prints "warning: trouble with #N: ERROR". The error
// returned is a write error or a failure to list the queue itself.
func WriteQread(w io.Writer, q *Queue) error {
	bw := bufio.NewWriter(w)
	for m, err := range q.Messages() {
		if err != nil {
			if m.ID == 0 {
				return err
			}
			fmt.Fprintf(bw, "warning: trouble with #%s: %s\n", m.ID, errstr.Text(err))
			continue
		}
		bw.WriteString(QreadHeader(m))
		for _, r := range m.Recipients {
			if r.Done {
				bw.WriteString("  done")
			}
			if r.Remote {
				bw.WriteString("\tremote\t")
			} else {
				bw.WriteString("\tlocal\t")
			}
			bw.WriteString(printable(r.Addr))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// QreadHeader is qmail-qread's first line for m, newline included.
func QreadHeader(m Message) string {
	s := Date(m.Birth) + " GMT  #" + m.ID.String() + "  " + strconv.FormatInt(m.Size, 10) + "  <" + printable(m.Sender) + "> "
	if m.Bouncing {
		s += " bouncing"
	}
	return s + "\n"
}

func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}
