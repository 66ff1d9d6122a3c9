package queue

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// prepared is a message whose info and channel files are written, waiting
// for their fsyncs, their directories' fsyncs and the removal of todo/N.
type prepared struct {
	m             *msg
	local, remote bool
	at            [2]time.Time // when each channel's next pass is due
	files         []*os.File   // written, not yet fsynced
}

// preBatch is how many todo entries are read, or messages written out, in
// one turn of the loop (sharing one round of fsyncs).
const preBatch = 64

// scanTodo lists the numbered entries of todo/ for preprocessing (names
// that are not purely decimal are ignored, as by qmail-send). The loop then
// preprocesses one batch per turn (preprocessSome), so that deliveries and
// their results go on during a long backlog, as qmail-send handles one
// todo entry per turn of its loop.
func (r *run) scanTodo() {
	r.nextRescan = r.now().Add(RescanInterval)
	if len(r.todo) > 0 {
		r.rescan = true // after the current list
		return
	}
	names, err := readNames(filepath.Join(r.q.dir, "todo"))
	if err != nil {
		r.warn("unable to read todo: " + logSafe(err.Error()))
		return
	}
	for _, name := range names {
		if id, ok := parseNum(name); ok {
			r.todo = append(r.todo, id)
		}
	}
}

// preprocessSome takes up to one batch of messages as direct messages, as
// many as the deliveries have room for: fresh ones first (see fresh.go),
// then the todo entries a scan listed; the rest wait in todo/.
func (r *run) preprocessSome() {
	if r.exiting {
		return
	}
	room := min(preBatch, r.directMax()-r.direct)
	items, lost := r.q.fresh.take(max(room, 0))
	if lost {
		r.scanTodo()
	}
	if len(r.todo) == 0 && r.rescan {
		r.rescan = false
		r.scanTodo()
	}
	for len(r.todo) > 0 && len(items) < room {
		id := r.todo[0]
		r.todo = r.todo[1:]
		if r.q.fresh.isPending(id) || slices.ContainsFunc(items, func(m freshMsg) bool { return m.id == id }) {
			continue // comes, or came, as a fresh message
		}
		if _, ok := r.msgs[id]; !ok { // else taken in this run already
			items = append(items, freshMsg{id: id})
		}
	}
	if len(r.todo) == 0 {
		r.todo = nil
	}
	// The messages of a batch are read in parallel; their log lines are
	// then written in order.
	type result struct {
		m    *msg
		ok   bool
		logs logBuf
	}
	res := make([]result, len(items))
	parallel(len(items), func(i int) error {
		res[i].m, res[i].ok = r.readTodo(items[i], &res[i].logs)
		return nil
	})
	now := r.now()
	for i := range res {
		res[i].logs.emit(r)
		if res[i].ok {
			delete(r.stale, res[i].m.id)
			r.startDirect(res[i].m, now)
		}
	}
}

// commit makes a batch's info and channel entries durable, then removes
// intd/N and todo/N (the cleaner's todo/N) and schedules the messages.
// Messages it cannot commit are forgotten: todo/N stays for the next scan.
func (r *run) commit(batch []prepared) {
	if len(batch) == 0 {
		return
	}
	var files []*os.File
	for _, p := range batch {
		files = append(files, p.files...)
	}
	// fsyncs issued together are committed together by the journal.
	errs := parallel(len(files), func(i int) error { return durable.SyncClose(files[i]) })
	ok := batch[:0]
	for _, p := range batch {
		failed := false
		for range p.files {
			if errs[0] != nil {
				failed = true
			}
			errs = errs[1:]
		}
		if failed {
			r.warn("trouble writing to " + Path("info", p.m.id, r.q.split))
			continue
		}
		ok = append(ok, p)
	}
	batch = ok
	dirs := map[string]bool{}
	for _, p := range batch {
		s := strconv.FormatUint(uint64(p.m.id)%uint64(r.q.split), 10)
		dirs[filepath.Join(r.q.dir, "info", s)] = true
		if p.local {
			dirs[filepath.Join(r.q.dir, "local", s)] = true
		}
		if p.remote {
			dirs[filepath.Join(r.q.dir, "remote", s)] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	for _, err := range parallel(len(dirList), func(i int) error { return durable.SyncDir(dirList[i]) }) {
		if err != nil {
			// Nothing is scheduled: todo/N stays and the next scan redoes it.
			r.warn(logSafe(err.Error()))
			return
		}
	}
	var cleaned []prepared
	for _, p := range batch {
		if err := r.q.cleanTodo(p.m.id); err != nil {
			r.warn("qmail-clean unable to clean up todo/" + p.m.id.String())
			continue
		}
		cleaned = append(cleaned, p)
	}
	// todo/N must not come back after a crash once deliveries are marked.
	// The fsyncs are the queue's group commits, shared with injections.
	for _, err := range parallel(2, func(i int) error { return []*dirSync{r.q.todoSync, r.q.intdSync}[i].sync() }) {
		if err != nil {
			r.warn(logSafe(err.Error()))
		}
	}
	now := r.now()
	for _, p := range cleaned {
		if p.m.direct {
			p.m.direct = false
			r.direct--
		}
		r.msgs[p.m.id] = p.m
		if p.local {
			r.schedule(p.m, false, p.at[0])
		}
		if p.remote {
			r.schedule(p.m, true, p.at[1])
		}
		if !p.local && !p.remote {
			r.toComplete(p.m, now)
		}
	}
}

// readTodo reads todo/N (or takes a fresh message's copy of it) into a
// direct message whose jobs hold their channel records in memory (see
// direct.go), after removing what an interrupted write-out of the same
// message may have left. It runs in parallel with other messages' reading:
// it reads the run's state but changes none, and logs through lg.
func (r *run) readTodo(it freshMsg, lg lineLogger) (*msg, bool) {
	q := r.q
	id, todo, size := it.id, it.todo, it.size
	todoName := "todo/" + id.String()
	if todo == nil {
		var err error
		todo, err = readQueueFile(q.path("todo", id))
		if errors.Is(err, fs.ErrNotExist) {
			// Listed by a scan made while this run still had the message
			// in hand: it was handled, and todo/ID removed, since.
			return nil, false
		}
		if err != nil {
			lg.warn("unable to open " + todoName)
			return nil, false
		}
		fi, err := os.Stat(q.path("mess", id))
		if err != nil {
			lg.warn("unable to stat " + Path("mess", id, q.split))
			return nil, false
		}
		size = fi.Size()
	}
	if r.stale[id] {
		for _, k := range []string{"local", "remote", "info", "bounce"} {
			if err := syscall.Unlink(q.path(k, id)); err != nil && err != syscall.ENOENT {
				lg.warn("unable to unlink " + Path(k, id, q.split))
				return nil, false
			}
		}
	}
	lg.info("new msg "+id.String(), "id", uint64(id))
	m := &msg{id: id, loaded: true, direct: true, stale: r.stale[id], hasDSN: it.dsn}
	if it.todo == nil { // read back: dsn/N tells whether it has DSN parameters
		m.hasDSN = q.exists("dsn", id)
	}
	var uid, pid string
	var chans [2][]byte
	for len(todo) > 0 {
		rec, rest, ok := bytes.Cut(todo, []byte{0})
		if !ok {
			break // an unterminated record cannot come from a committed todo
		}
		todo = rest
		if len(rec) == 0 {
			continue
		}
		switch rec[0] {
		case 'u':
			uid = string(rec[1:])
		case 'p':
			pid = string(rec[1:])
		case 'F':
			m.sender = string(rec[1:])
			lg.info("info msg "+id.String()+": bytes "+strconv.FormatInt(size, 10)+" from <"+logSafe(m.sender)+"> qp "+pid+" uid "+uid,
				"id", uint64(id), "bytes", size, "from", m.sender, "qp", pid, "uid", uid)
		case 'T':
			addr, remote := r.router.route(string(rec[1:]))
			c := &chans[chanIndex(remote)]
			*c = append(*c, 'T')
			*c = append(*c, addr...)
			*c = append(*c, 0)
		default:
			lg.warn("unknown record type in " + todoName)
			return nil, false
		}
	}
	m.birth = r.now()
	for i, data := range chans {
		if data != nil {
			m.jobs[i] = &job{m: m, remote: i == 1, data: data, index: -1}
		}
	}
	return m, true
}

// parallel runs fn(0..n-1) on up to 32 goroutines, the caller's among
// them (it runs fn(0)), and returns the errors by index; all goroutines
// have ended when it returns.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	var sem chan struct{}
	if n > 32 {
		sem = make(chan struct{}, 31)
	}
	for i := 1; i < n; i++ {
		if sem != nil {
			sem <- struct{}{}
		}
		wg.Go(func() {
			if sem != nil {
				defer func() { <-sem }()
			}
			errs[i] = fn(i)
		})
	}
	if n > 0 {
		errs[0] = fn(0)
	}
	wg.Wait()
	return errs
}

// writeNew creates p exclusively (0600) with content and mtime t; the
// caller fsyncs and closes it.
func (q *Queue) writeNew(p string, content []byte, t time.Time) (*os.File, error) {
	f, reused, err := q.newFile(p, os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return nil, err
	}
	if reused {
		if err := f.Truncate(int64(len(content))); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := os.Chtimes(p, t, t); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lineLogger is what preprocess logs through: the run itself, or a buffer.
type lineLogger interface {
	info(line string, args ...any)
	warn(line string, args ...any)
}

type logRec struct {
	warn bool
	line string
	args []any
}

// logBuf holds log lines to be written later, in order.
type logBuf []logRec

func (b *logBuf) info(line string, args ...any) { *b = append(*b, logRec{false, line, args}) }
func (b *logBuf) warn(line string, args ...any) { *b = append(*b, logRec{true, line, args}) }

func (b logBuf) emit(r *run) {
	for _, l := range b {
		if l.warn {
			r.warn(l.line, l.args...)
		} else {
			r.info(l.line, l.args...)
		}
	}
}
