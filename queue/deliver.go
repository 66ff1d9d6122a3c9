package queue

import (
	"bytes"
	"container/heap"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/internal/durable"
)

// maxReady bounds the units read ahead while the ready ones are blocked by
// the per-domain limit.
const maxReady = 10000

// startDeliveries starts deliveries while slots are free.
func (r *run) startDeliveries() {
	if r.exiting {
		return
	}
	for _, c := range r.chans {
		for c.active < c.limit {
			u := r.nextUnit(c)
			if u == nil {
				break
			}
			r.start(c, u)
		}
	}
}

func (r *run) startable(c *channel, u *unit) bool {
	lim := r.s.ConcurrencyDomain
	return !c.remote || lim <= 0 || c.perDomain[u.domain] < lim
}

// nextUnit returns the next delivery to start on c: the first startable
// unit of the passes in progress, else one of the next due message's pass.
func (r *run) nextUnit(c *channel) *unit {
	for {
		for i, u := range c.ready {
			if r.startable(c, u) {
				c.ready = append(c.ready[:i], c.ready[i+1:]...)
				return u
			}
		}
		if len(c.waiting) == 0 || len(c.ready) >= maxReady || c.waiting[0].next.After(r.now()) {
			return nil
		}
		j := heap.Pop(&c.waiting).(*job)
		if r.skip(j.m) {
			continue // held, or an operation waits on it: admin.go puts it back
		}
		r.openPass(c, j)
	}
}

// openPass reads a channel file and queues a unit for its T records.
func (r *run) openPass(c *channel, j *job) {
	m := j.m
	name := Path(kind(j.remote), m.id, r.q.split)
	if !m.loaded {
		if err := r.loadSender(m); err != nil {
			r.warn("unable to read " + Path("info", m.id, r.q.split) + ": " + logSafe(err.Error()))
			j.next = r.now().Add(completionRetry)
			heap.Push(&c.waiting, j)
			return
		}
	}
	var f *os.File
	var data []byte
	var err error
	if m.direct {
		data = j.data
	} else {
		f, err = openFile(r.q.path(kind(j.remote), m.id), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			m.jobs[chanIndex(j.remote)] = nil
			r.maybeComplete(m)
			return
		}
		if err == nil {
			data, err = io.ReadAll(f)
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		r.warn("unable to read " + name + ": " + logSafe(err.Error()))
		j.next = r.now().Add(completionRetry)
		heap.Push(&c.waiting, j)
		return
	}
	now := r.now()
	j.f = f
	j.inPass = true
	j.retry = NextRetry(m.birth, now, j.remote)
	j.dying = Dying(m.birth, now, r.life)
	j.pending, j.unstart, j.deferred = 0, 0, 0
	var units []*unit
	byDomain := map[string]*unit{}
	verp := strings.HasSuffix(m.sender, "-@[]")
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			j.deferred++ // a partial last record: keep the file, never drop it
			break
		}
		rec := data[off : off+end]
		recOff := int64(off)
		off += end + 1
		if len(rec) == 0 {
			continue
		}
		if rec[0] == 'D' {
			continue
		}
		if rec[0] != 'T' {
			// The pass ends here, as in qmail; the file is kept for the
			// next one rather than removed with recipients unread.
			r.warn("unknown record type in " + name + "!")
			j.deferred++
			break
		}
		addr := string(rec[1:])
		j.pending++
		if !j.remote || verp || !strings.Contains(addr, "@") {
			units = append(units, &unit{j: j, sender: verpSender(m.sender, addr), rcpts: []string{addr}, offs: []int64{recOff}, domain: domainOf(addr)})
			continue
		}
		d := domainOf(addr)
		u := byDomain[d]
		if u == nil || len(u.rcpts) >= r.batch {
			u = &unit{j: j, sender: m.sender, domain: d}
			byDomain[d] = u
			units = append(units, u)
		}
		u.rcpts = append(u.rcpts, addr)
		u.offs = append(u.offs, recOff)
	}
	j.unstart = len(units)
	if j.pending == 0 {
		r.finishJob(j) // nothing to deliver: remove the file, or keep it if unreadable
		return
	}
	c.ready = append(c.ready, units...)
}

func domainOf(addr string) string {
	return lower(addr[strings.LastIndexByte(addr, '@')+1:])
}

func (r *run) loadSender(m *msg) error {
	info, err := os.ReadFile(r.q.path("info", m.id))
	if err != nil {
		return err
	}
	if len(info) > 0 && info[0] == 'F' {
		s, _, _ := bytes.Cut(info[1:], []byte{0})
		m.sender = string(s)
	}
	m.loaded = true
	return nil
}

// start logs and starts one delivery.
func (r *run) start(c *channel, u *unit) {
	c.active++
	if c.remote {
		c.perDomain[u.domain]++
	}
	u.j.m.active++
	u.j.unstart--
	for _, rcpt := range u.rcpts {
		r.dnum++
		u.dnums = append(u.dnums, r.dnum)
		r.info("starting delivery "+itoa(r.dnum)+": msg "+u.j.m.id.String()+" to "+kind(c.remote)+" "+logSafe(rcpt),
			"delivery", r.dnum, "id", uint64(u.j.m.id), "channel", kind(c.remote), "to", rcpt)
	}
	r.status()
	r.startDSN(u)
	r.wg.Go(func() {
		rep := report{u: u, results: r.deliver(u)}
		rep.delayed = r.notify(u, rep.results)
		r.results <- rep
	})
}

// deliver runs in its own goroutine: it must not touch the run's state.
func (r *run) deliver(u *unit) []Result {
	n := len(u.rcpts)
	fail := func(text string) []Result {
		res := make([]Result, n)
		for i := range res {
			res[i] = Result{Report: text, Err: errors.New(text)}
		}
		return res
	}
	if !strings.Contains(u.rcpts[0], "@") {
		// qmail's spawners refuse these (qmail-lspawn, qmail-rspawn).
		text := "Sorry, address must include host name. (#5.1.3)\n"
		return []Result{{Report: text, Err: &PermanentError{text}}}
	}
	f, err := openFile(r.q.path("mess", u.j.m.id), os.O_RDONLY, 0)
	if err != nil {
		return fail("Unable to open message. (#4.3.0)\n")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail("Unable to stat message. (#4.3.0)\n")
	}
	d := Delivery{ID: u.j.m.id, Sender: u.sender, Recipients: u.rcpts, Message: io.NewSectionReader(f, 0, fi.Size()), DSN: u.dsn}
	ctx := r.ctx
	if !u.j.remote {
		if r.s.Local == nil {
			return fail("No local deliverer is configured. (#4.3.0)\n")
		}
		return []Result{r.s.Local.DeliverLocal(ctx, d)}
	}
	if r.s.Remote == nil {
		return fail("No remote deliverer is configured. (#4.3.0)\n")
	}
	res := r.s.Remote.DeliverRemote(ctx, d)
	if len(res) != n {
		out := make([]Result, n)
		copy(out, res)
		for i := len(res); i < n; i++ {
			out[i] = Result{Err: errMangled}
		}
		return out
	}
	return res
}

var errMangled = errors.New("report mangled")

func itoa(n int) string { return strconv.Itoa(n) }

// handle records the outcome of a delivery: each recipient's result is on
// disk (bounce record fsynced, then the D mark) before the job moves on.
func (r *run) handle(rep report) {
	u, j := rep.u, rep.u.j
	c := r.chans[chanIndex(j.remote)]
	c.active--
	j.m.active--
	if c.remote {
		if c.perDomain[u.domain]--; c.perDomain[u.domain] <= 0 {
			delete(c.perDomain, u.domain)
		}
	}
	name := Path(kind(j.remote), j.m.id, r.q.split)
	if d := j.m.dsn; d != nil && len(rep.delayed) > 0 {
		if d.delayed == nil {
			d.delayed = map[string]bool{}
		}
		for _, a := range rep.delayed {
			d.delayed[a] = true
		}
	}
	for i, res := range rep.results {
		d := itoa(u.dnums[i])
		if errors.Is(res.Err, errMangled) {
			r.info("delivery " + d + ": report mangled, will defer")
			j.deferred++
			j.pending--
			continue
		}
		text := res.Report
		if text == "" && res.Err != nil {
			text = res.Err.Error()
		}
		permanent := qmailkit.IsPermanent(res.Err)
		if res.Err != nil && !permanent && j.dying {
			permanent, text = true, text+tooLong
		}
		switch {
		case res.Err == nil:
			r.info("delivery "+d+": success: "+logSafe(text), "delivery", u.dnums[i], "result", "success", "report", text)
			r.mark(j, name, u.offs[i])
			r.observe(j, u.rcpts[i], true)
		case permanent && u.notice != nil && !u.dsn.For(i).Notify.reportFailure():
			// RFC 3461 section 4.1: NOTIFY without FAILURE (NEVER among
			// them) asks for no report of the failure.
			r.info("delivery "+d+": failure: "+logSafe(text)+" (no report: NOTIFY="+u.dsn.For(i).Notify.String()+")",
				"delivery", u.dnums[i], "result", "failure", "report", text, "notify", u.dsn.For(i).Notify.String())
			r.mark(j, name, u.offs[i])
			r.observe(j, u.rcpts[i], false)
		case permanent:
			r.info("delivery "+d+": failure: "+logSafe(text), "delivery", u.dnums[i], "result", "failure", "report", text)
			if err := r.addBounce(j.m, u.rcpts[i], text); err != nil {
				r.alert("unable to append to bounce message; will retry " + logSafe(u.rcpts[i]))
				j.deferred++
				break
			}
			j.m.bounced = true
			r.mark(j, name, u.offs[i])
			r.observe(j, u.rcpts[i], false)
		default:
			r.info("delivery "+d+": deferral: "+logSafe(text), "delivery", u.dnums[i], "result", "deferral", "report", text)
			j.deferred++
		}
		j.pending--
	}
	r.status()
	if j.pending == 0 && j.unstart == 0 {
		r.finishJob(j)
	}
}

// mark turns the recipient's T into D in place (qmail: one byte, no fsync;
// a lost mark means one more delivery, never a lost one).
func (r *run) mark(j *job, name string, off int64) {
	if j.m.direct {
		j.data[off] = 'D'
		return
	}
	if _, err := j.f.WriteAt([]byte{'D'}, off); err != nil {
		r.warn("trouble marking " + name + "; message will be delivered twice!")
	}
}

// addBounce appends a bounce record to bounce/N and fsyncs it, so that the
// D mark that follows never stands for a failure nobody will hear of.
func (r *run) addBounce(m *msg, rcpt, text string) error {
	f, err := os.OpenFile(r.q.path("bounce", m.id), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(bounceRecord(r.router.stripPrepend(rcpt), text)); err != nil {
		f.Close()
		return err
	}
	if err := durable.SyncClose(f); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Join(r.q.dir, "bounce"))
}

// finishJob ends a pass: the job waits for its retry, or, with nothing left
// to do, its channel file goes and the message may complete.
func (r *run) finishJob(j *job) {
	j.inPass = false
	c := r.chans[chanIndex(j.remote)]
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	if j.m.direct {
		r.directPassDone(j)
		return
	}
	if j.deferred > 0 {
		j.next = j.retry
		heap.Push(&c.waiting, j)
		return
	}
	if err := r.q.pool.retire(r.q.path(kind(j.remote), j.m.id)); err != nil {
		r.warn("unable to unlink " + Path(kind(j.remote), j.m.id, r.q.split))
		j.next = r.now().Add(completionRetry)
		heap.Push(&c.waiting, j)
		return
	}
	j.m.jobs[chanIndex(j.remote)] = nil
	r.maybeComplete(j.m)
}

func (r *run) maybeComplete(m *msg) {
	if m.jobs[0] == nil && m.jobs[1] == nil {
		r.toComplete(m, r.now())
	}
}
