package aliases

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

// DB is a fastforward database (written by newaliases or setforward) open
// for lookups and expansions. It is safe for concurrent use, except Close.
type DB struct {
	c    *cdb.CDB
	name string

	// Dir is the directory relative list-file names (such as "./x.bin",
	// written for ":include:x") are read from; "" means the current
	// directory, as for fastforward run from a .qmail file in the alias
	// user's home.
	Dir string
	// MaxListBytes limits the size of a list file an expansion reads; a
	// larger one is the error "unable to read FILE: out of memory". 0
	// means DefaultMaxListBytes; negative means unlimited.
	MaxListBytes int64
}

// DefaultMaxListBytes is the default limit on a mailing-list file.
const DefaultMaxListBytes = 64 << 20

// Open opens the database at path. Errors are *Error "unable to read PATH"
// (with EIO, "input/output error", as the system error for a file too
// short or corrupt to be a database). The file is mapped once: a database renamed
// over path later is seen by opening again, as fastforward opens it once
// per message.
func Open(path string) (*DB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, sysErr("unable to read "+path, unwrapPath(err))
	}
	defer f.Close()
	return OpenFile(f)
}

// OpenFile is Open for a file already open; f may be closed once it
// returns. Error texts name f.Name().
func OpenFile(f *os.File) (*DB, error) {
	c, err := cdb.OpenFile(f)
	if err != nil {
		return nil, sysErr("unable to read "+f.Name(), dbErr(err))
	}
	return &DB{c: c, name: f.Name()}, nil
}

// dbErr is the system error of a failed database read: a corrupt or
// truncated file reads as EIO ("input/output error"), as the short read
// of fastforward's cdb library does.
func dbErr(err error) error {
	if errors.Is(err, cdb.ErrCorrupt) {
		return syscall.EIO
	}
	return unwrapPath(err)
}

// Close unmaps the database.
func (db *DB) Close() error { return db.c.Close() }

// Lookup returns the data of the first record whose key is kind (':' or
// '?') followed by addr, lower-cased, or nil when there is none (a record
// with empty data gives a non-nil empty slice). With wild, it then tries,
// as fastforward does for the original recipient, kind + the part of addr
// from its last "@" ("@example.net"), then kind + addr up to and including
// its last "@" ("joe@"); the first that exists wins.
func (db *DB) Lookup(kind byte, addr string, wild bool) ([]byte, error) {
	keys := []string{addr}
	if at := strings.LastIndexByte(addr, '@'); wild && at >= 0 {
		keys = append(keys, addr[at:], addr[:at+1])
	}
	for _, k := range keys {
		d, err := db.c.Get([]byte(lower(string(kind) + k)))
		if err != nil {
			return nil, sysErr("unable to read "+db.name, dbErr(err))
		}
		if d != nil {
			return d, nil
		}
	}
	return nil, nil
}

// Plan is what fastforward does with a message to an address: run
// Programs in order, each with the message on its standard input, then
// send one copy, with envelope sender Sender, to Targets.
type Plan struct {
	// Sender is the envelope sender of the forwarded copy: the message's
	// sender, or the data of the "?" record that matched the recipient
	// (owner-list@... for a list) unless the sender is empty or "#@[]".
	Sender string
	// Programs are the "|COMMAND" (run "sh -c COMMAND") and "!COMMAND"
	// (run "preline sh -c COMMAND") instructions, in the order fastforward
	// runs them.
	Programs []string
	// Targets are the forwarding addresses in the order fastforward gives
	// them to qmail-queue: the last found first.
	Targets []string
}

// ErrNoMailbox is returned by [DB.Expand] for an address the database does
// not know. Its text is fastforward's bounce message, "Sorry, no mailbox
// here by that name. (#5.1.1)"; it is permanent.
var ErrNoMailbox error = permErr("Sorry, no mailbox here by that name. (#5.1.1)")

// Expand works out what fastforward does with a message from sender to
// recipient, without running or sending anything:
//
//  1. The recipient is looked up with wildcards ([DB.Lookup]). Unless
//     sender is "" or "#@[]", a "?" record for it gives the new sender.
//     Without a ":" record the answer is ErrNoMailbox.
//  2. The record's instructions are read in order: a program is noted at
//     once; "&ADDRESS" (under 900 bytes), "/FILE" and ".FILE" go on a stack.
//  3. Entries are popped from the stack (last pushed first), each once: a
//     file is read as a binary mailing list (it must be readable by
//     everyone; its "&", "/" and "." entries are pushed, programs in it are
//     ignored); "&ADDRESS" is looked up exactly (no wildcards) and its
//     instructions are read as in 2, unless it has no ":" record or has a
//     "?" record: then ADDRESS is a target.
//
// A name written without a domain in /etc/aliases ("joe", key "joe@") is
// therefore never expanded here: the copy sent to it comes back as a new
// recipient. On an error (a list file that cannot be read, or that is not
// world-readable: *Error with fastforward's text; a corrupt database) the
// Plan returned holds the programs found before it, which fastforward runs
// before it stops.
func (db *DB) Expand(recipient, sender string) (*Plan, error) {
	e := expansion{db: db, done: map[string]bool{recipient: true}}
	p := &e.plan
	p.Sender = sender
	if sender != "" && sender != "#@[]" {
		d, err := db.Lookup('?', recipient, true)
		if err != nil {
			return p, err
		}
		if d != nil {
			p.Sender = cstring(string(d))
		}
	}
	d, err := db.Lookup(':', recipient, true)
	if err != nil {
		return p, err
	}
	if d == nil {
		return p, ErrNoMailbox
	}
	e.data(d)
	for len(e.todo) > 0 {
		x := e.todo[len(e.todo)-1]
		e.todo = e.todo[:len(e.todo)-1]
		if e.done[x] {
			continue
		}
		e.done[x] = true
		switch x[0] {
		case '.', '/':
			err = e.file(x)
		default:
			err = e.recip(x[1:])
		}
		if err != nil {
			return p, err
		}
	}
	for i := len(e.forward) - 1; i >= 0; i-- {
		p.Targets = append(p.Targets, e.forward[i])
	}
	return p, nil
}

type expansion struct {
	db      *DB
	plan    Plan
	done    map[string]bool
	todo    []string
	forward []string
}

// entries calls fn for each NUL-terminated entry of b; bytes after the
// last NUL are ignored.
func entries(b []byte, fn func(e string)) {
	i := 0
	for j, c := range b {
		if c == 0 {
			fn(string(b[i:j]))
			i = j + 1
		}
	}
}

// push stacks a list-file or address entry (addresses under 900 bytes).
func (e *expansion) push(s string) {
	switch {
	case s == "":
	case s[0] == '.', s[0] == '/':
		e.todo = append(e.todo, s)
	case s[0] == '&' && len(s) < 900:
		e.todo = append(e.todo, s)
	}
}

func (e *expansion) data(d []byte) {
	entries(d, func(s string) {
		if s != "" && (s[0] == '|' || s[0] == '!') {
			e.plan.Programs = append(e.plan.Programs, s)
			return
		}
		e.push(s)
	})
}

func (e *expansion) recip(addr string) error {
	own, err := e.db.Lookup('?', addr, false)
	if err != nil {
		return err
	}
	if own == nil {
		d, err := e.db.Lookup(':', addr, false)
		if err != nil {
			return err
		}
		if d != nil {
			e.data(d)
			return nil
		}
	}
	e.forward = append(e.forward, addr)
	return nil
}

// file reads a binary mailing list as fastforward does: opened without
// blocking (a FIFO with no writer reads as empty), it must be readable by
// everyone (the check is on the file opened, so a symbolic link counts
// as its target).
func (e *expansion) file(name string) error {
	path := name
	if e.db.Dir != "" && !filepath.IsAbs(name) {
		path = filepath.Join(e.db.Dir, name)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return sysErr("unable to read "+name, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return sysErr("unable to stat "+name, err)
	}
	if st.Mode&0o444 != 0o444 {
		return tempErr(name + " is not world-readable")
	}
	max := e.db.MaxListBytes
	switch {
	case max == 0:
		max = DefaultMaxListBytes
	case max < 0:
		max = 1<<63 - 1
	}
	var list []byte
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return sysErr("unable to read "+name, err)
		}
		if n <= 0 {
			break
		}
		if int64(len(list)+n) > max {
			return sysErr("unable to read "+name, syscall.ENOMEM)
		}
		list = append(list, buf[:n]...)
	}
	entries(list, e.push)
	return nil
}
