package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrRunning is returned by Scheduler.Run when another scheduler (ours or
// qmail-send) holds the queue's lock/sendmutex.
var ErrRunning = errors.New("queue: a scheduler is already running on this queue")

// MaxConcurrency caps each channel's concurrency, as qmail's spawners do
// (conf-spawn).
const MaxConcurrency = 120

// Intervals of qmail-send.
const (
	RescanInterval  = 1500 * time.Second  // todo/ is rescanned at least this often
	CleanInterval   = 76431 * time.Second // the 36-hour rule runs this often
	completionRetry = 123 * time.Second   // retry of a failed completion (bounce injection)
	lockedRetry     = time.Second         // retry of a completion whose mess file another held (endMsg)
)

// Scheduler is qmail-send: it preprocesses newly queued messages (routing
// each recipient to the local or the remote channel), runs deliveries
// through Local and Remote within the concurrency limits, records each
// outcome in the queue before acting on it, retries temporary failures on
// qmail's schedule until the queue lifetime, and bounces permanent ones.
// See the package documentation. Set the fields, then call Run; the fields
// must not change while Run runs (use Reload for the routing).
type Scheduler struct {
	Queue  *Queue
	Local  LocalDeliverer  // nil: local deliveries are deferred
	Remote RemoteDeliverer // nil: remote deliveries are deferred

	// Routing is read when Run starts and replaced by Reload.
	Routing Routing

	// ConcurrencyLocal and ConcurrencyRemote are qmail's
	// control/concurrencylocal and concurrencyremote: the most deliveries
	// (for remote: transactions) in progress at once. 0 means qmail's
	// default, 10 and 20; a negative value puts the channel on hold
	// (qmail's 0). Values above MaxConcurrency are capped.
	ConcurrencyLocal  int
	ConcurrencyRemote int
	// ConcurrencyDomain limits the remote transactions in progress to one
	// domain; 0 means no limit (qmail has none).
	ConcurrencyDomain int
	// RemoteBatch is the most recipients at one domain given to one remote
	// transaction; 0 means 100. 1 is qmail's behaviour (one qmail-remote
	// per recipient).
	RemoteBatch int

	// Lifetime is control/queuelifetime; 0 means DefaultLifetime.
	Lifetime time.Duration

	// Bounce configures bounce messages.
	Bounce Bounce

	// DelayNotice is how long a recipient that asked for NOTIFY=DELAY (a
	// DSN parameter, RFC 3461) may stay deferred before one "delayed"
	// notification is sent to the sender. 0 means DefaultDelayNotice (4
	// hours); negative means never. Messages without DSN parameters (all
	// of those injected by qmail's programs, or accepted by an SMTP server
	// in Compat mode) never get one.
	DelayNotice time.Duration

	// Logger receives qmail-send's log lines as record messages (see
	// LogHandler). Nil discards them.
	Logger *slog.Logger

	// NoTrigger leaves lock/trigger alone: only injections through this
	// process's Queue are noticed at once, others at the next rescan. For
	// tests in a testing/synctest bubble, where a goroutine blocked on the
	// FIFO would keep the fake clock from advancing.
	NoTrigger bool

	// Now returns the current time for every scheduling decision. Nil
	// means time.Now. It must be safe for concurrent use.
	Now func() time.Time

	// Observe, when set, is told each recipient's final outcome (see
	// [Outcome]): delivery latency for metrics. It is called from Run's
	// loop, so it must return at once.
	Observe func(Outcome)

	stats   statsBox
	mu      sync.Mutex
	wake    chan struct{}
	routing *Routing // pending Reload
	flush   bool

	// ctl takes administration requests (admin.go) while Run's loop
	// runs; ctlDone is closed when it stops. Both nil otherwise.
	ctl     chan *adminReq
	ctlDone chan struct{}

	// endHook, for tests, is called when a message's last name (todo/N
	// of a direct message, else info/S/N) is gone and its other files
	// are not yet removed.
	endHook func(id ID)
}

func (s *Scheduler) signal() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	return s.wake
}

func (s *Scheduler) poke() {
	select {
	case s.signal() <- struct{}{}:
	default:
	}
}

// Reload replaces the routing (qmail-send rereads locals and
// virtualdomains on SIGHUP). Messages already preprocessed keep their
// routing. It may be called at any time, also while Run runs.
func (s *Scheduler) Reload(r Routing) {
	s.mu.Lock()
	s.routing = &r
	s.mu.Unlock()
	s.poke()
}

// Flush makes every waiting delivery due now (qmail-send's SIGALRM).
func (s *Scheduler) Flush() {
	s.mu.Lock()
	s.flush = true
	s.mu.Unlock()
	s.poke()
}

// msg is a preprocessed message in the scheduler's memory.
type msg struct {
	id     ID
	birth  time.Time
	sender string
	loaded bool // sender read from info
	jobs   [2]*job
	// completion pending: when set, the message waits for completion at
	// retryAt (after a failed bounce injection).
	doneAt    time.Time
	done      bool // in run.completing
	injecting bool // its bounce is being injected
	finished  bool // completed while its bounce was being injected
	// direct: delivered straight from todo/N, with no info or channel
	// files (see direct.go); its jobs hold their records in memory.
	// bounced: bounce/N holds a failure of it. stale: files of an
	// interrupted write-out were removed before it was taken direct.
	direct, bounced, stale bool
	// locked: endMsg failed because another held the lock of mess/S/N.
	locked bool
	// active counts its deliveries in progress; waits the administration
	// operations waiting for its passes to end (admin.go).
	active, waits int
	// hasDSN: dsn/N exists (dsn.go); dsn is its content once read.
	hasDSN bool
	dsn    *msgDSN
}

// job is one channel file of a message.
type job struct {
	m      *msg
	remote bool
	next   time.Time // next attempt
	index  int       // heap index, -1 when not in the heap

	// data holds a direct message's channel records (T or D), marked in
	// memory; fin is set when its pass is over.
	data []byte
	fin  bool

	// during a pass
	inPass   bool
	f        *os.File
	retry    time.Time
	dying    bool
	pending  int // recipients not yet reported
	unstart  int // units not yet started
	deferred int // recipients left T
}

type unit struct {
	j      *job
	domain string
	sender string
	rcpts  []string
	offs   []int64
	dnums  []int
	dsn    *DSN     // the message's DSN parameters, nil if none
	notice *unitDSN // for notifications, nil if none can be sent
}

type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h jobHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *jobHeap) Push(x any)        { j := x.(*job); j.index = len(*h); *h = append(*h, j) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.index = -1
	return j
}

type channel struct {
	remote    bool
	limit     int
	active    int
	waiting   jobHeap
	ready     []*unit
	perDomain map[string]int
}

type report struct {
	u       *unit
	results []Result
	delayed []string // recipients sent a "delayed" notification
}

// run is the state of one Run.
type run struct {
	s       *Scheduler
	q       *Queue
	log     *slog.Logger
	now     func() time.Time
	router  *router
	chans   [2]*channel
	msgs    map[ID]*msg
	dnum    int
	results chan report
	wg      sync.WaitGroup // delivery goroutines
	exiting bool
	ctx     context.Context // for deliveries: not cancelled by Run's ctx
	batch   int
	life    time.Duration
	// delayAfter is Scheduler.DelayNotice, its default applied; 0: never.
	delayAfter time.Duration

	nextRescan time.Time
	nextClean  time.Time
	completing []*msg      // messages whose completion is due or delayed
	bouncing   int         // bounce injections in progress
	todo       []ID        // todo/ entries listed, not yet preprocessed
	rescan     bool        // list todo/ again once r.todo is done
	direct     int         // direct messages in memory
	stale      map[ID]bool // in todo/ with files an interrupted pass may have left
	settle     []*msg      // direct messages to write out as preprocessed ones
	bounced    chan bounceDone
	oldest     time.Time    // birth of the oldest message in msgs, for Scheduler.Stats
	nextOldest time.Time    // when to look for it again
	held       map[ID]bool  // messages with a hold/S/N file (admin.go)
	waits      []*adminWait // deletes and requeues waiting for passes to end
}

func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	case v > MaxConcurrency:
		return MaxConcurrency
	}
	return v
}

// Run schedules deliveries until ctx is done, then starts no new delivery,
// waits for those in progress and records their outcome, saves each
// waiting message's next attempt time in its channel files' mtime, and
// returns nil. It returns ErrRunning if another scheduler holds the queue.
// Run owns every goroutine it starts; all have ended when it returns.
func (s *Scheduler) Run(ctx context.Context) error {
	q := s.Queue
	if q == nil || q.ro {
		return errors.New("queue: scheduler: no writable Queue")
	}
	lock, err := os.OpenFile(filepath.Join(q.dir, "lock", "sendmutex"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("queue: scheduler: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			s.logger().Error("alert: cannot start: qmail-send is already running")
			return ErrRunning
		}
		return fmt.Errorf("queue: scheduler: lock: %w", err)
	}
	q.pool.enable(true)
	// Slots go after the pool is off, so that none is prepared again.
	defer q.trimSlots(time.Time{}, true)
	defer q.pool.enable(false)
	q.running.Add(1)
	defer q.running.Add(-1)
	pulled := make(chan struct{}, 1)
	if !s.NoTrigger {
		// The trigger FIFO, opened read-write so that it always has a
		// writer and reads block until an injector in another process
		// pulls it.
		trig, err := os.OpenFile(filepath.Join(q.dir, "lock", "trigger"), os.O_RDWR|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("queue: scheduler: trigger: %w", err)
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		defer trig.Close()
		wg.Go(func() {
			buf := make([]byte, 64)
			for {
				if _, err := trig.Read(buf); err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.EAGAIN) {
						continue
					}
					return
				}
				select {
				case pulled <- struct{}{}:
				default:
				}
			}
		})
	}

	s.mu.Lock()
	if s.routing != nil {
		s.Routing, s.routing = *s.routing, nil
	}
	routing := s.Routing
	s.mu.Unlock()
	r := &run{
		s:       s,
		q:       q,
		log:     s.logger(),
		now:     s.Now,
		router:  routing.compile(),
		msgs:    map[ID]*msg{},
		stale:   map[ID]bool{},
		ctx:     context.WithoutCancel(ctx),
		batch:   s.RemoteBatch,
		life:    s.Lifetime,
		results: make(chan report, 2*MaxConcurrency),
		bounced: make(chan bounceDone, maxBouncing),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.batch <= 0 {
		r.batch = 100
	}
	if r.life <= 0 {
		r.life = DefaultLifetime
	}
	switch {
	case s.DelayNotice > 0:
		r.delayAfter = s.DelayNotice
	case s.DelayNotice == 0:
		r.delayAfter = DefaultDelayNotice
	}
	r.chans[0] = &channel{limit: limit(s.ConcurrencyLocal, 10)}
	r.chans[1] = &channel{remote: true, limit: limit(s.ConcurrencyRemote, 20), perDomain: map[string]int{}}
	defer s.stopped()
	r.publish(r.now())
	ctl := s.ctlStart()
	err = r.loop(ctx, pulled, ctl)
	r.ctlStop()
	r.wg.Wait()
	return err
}

func (s *Scheduler) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (r *run) info(line string, args ...any)  { r.log.Info(line, args...) }
func (r *run) warn(line string, args ...any)  { r.log.Warn("warning: "+line, args...) }
func (r *run) alert(line string, args ...any) { r.log.Error("alert: "+line, args...) }

func (r *run) status() {
	l, rm := r.chans[0], r.chans[1]
	line := fmt.Sprintf("status: local %d/%d remote %d/%d", l.active, l.limit, rm.active, rm.limit)
	if r.exiting {
		line += " exitasap"
	}
	r.info(line, "local", l.active, "remote", rm.active)
}

func (r *run) loop(ctx context.Context, pulled <-chan struct{}, ctl <-chan *adminReq) error {
	r.status()
	now := r.now()
	if err := r.q.cleanStale(now, true); err != nil {
		r.warn(logSafe(err.Error()))
	}
	r.nextClean = now.Add(CleanInterval)
	r.startupScan()
	r.scanTodo()
	wake := r.s.signal()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	done := ctx.Done()
	for {
		r.applyControl()
		r.adminStep()
		r.settleSome()
		r.preprocessSome()
		r.complete()
		r.startDeliveries()
		if r.exiting && r.chans[0].active == 0 && r.chans[1].active == 0 && r.bouncing == 0 {
			break
		}
		if d, ok := r.nextWake(); ok {
			timer.Reset(max(d, 0))
		} else {
			timer.Reset(time.Hour)
		}
		r.publish(r.now())
		select {
		case <-done:
			r.exiting = true
			done = nil
			r.status()
		case rep := <-r.results:
			r.handle(rep)
			// Every result already in: a batch of preprocessing between
			// two results would let deliveries wait on it.
			for more := true; more; {
				select {
				case rep := <-r.results:
					r.handle(rep)
				default:
					more = false
				}
			}
		case b := <-r.bounced:
			r.bounceInjected(b)
		case <-r.q.notify:
			// A fresh message (or a dropped one, which makes
			// preprocessSome scan).
		case <-pulled:
			if !r.exiting {
				r.scanTodo()
			}
		case <-wake:
		case req := <-ctl:
			r.admin(req)
		case <-timer.C:
			now := r.now()
			r.q.trimSlots(now, false)
			if !r.exiting && !now.Before(r.nextRescan) {
				r.scanTodo()
			}
			if !r.exiting && !now.Before(r.nextClean) {
				if err := r.q.CleanStale(now); err != nil {
					r.warn(logSafe(err.Error()))
				}
				r.nextClean = now.Add(CleanInterval)
			}
		}
	}
	r.saveTimes()
	r.settleAtExit()
	for _, c := range r.chans {
		now := r.now()
		for _, u := range c.ready { // passes cut short: due again at the next start
			if u.j.f != nil {
				u.j.f.Close()
				u.j.f = nil
				os.Chtimes(r.q.path(kind(u.j.remote), u.j.m.id), now, now)
			}
		}
		c.ready = nil
	}
	r.info("status: exiting")
	return nil
}

// applyControl takes a pending Reload or Flush.
func (r *run) applyControl() {
	s := r.s
	s.mu.Lock()
	rt, flush := s.routing, s.flush
	s.routing, s.flush = nil, false
	if rt != nil {
		s.Routing = *rt
	}
	s.mu.Unlock()
	if rt != nil {
		r.router = rt.compile()
	}
	if flush {
		now := r.now()
		for _, c := range r.chans {
			for _, j := range c.waiting {
				j.next = now
			}
			heap.Init(&c.waiting)
		}
		for _, m := range r.completing {
			m.doneAt = now
		}
	}
}

// nextWake is how long until something timed is due.
func (r *run) nextWake() (time.Duration, bool) {
	if r.exiting {
		return 0, false
	}
	if len(r.settle) > 0 || (len(r.todo) > 0 || r.rescan || r.q.fresh.waiting()) && r.direct < r.directMax() {
		return 0, true
	}
	now := r.now()
	t := r.nextRescan
	if r.nextClean.Before(t) {
		t = r.nextClean
	}
	for _, c := range r.chans {
		if c.active < c.limit && len(c.ready) == 0 && len(c.waiting) > 0 && c.waiting[0].next.Before(t) {
			t = c.waiting[0].next
		}
	}
	for _, m := range r.completing {
		if !m.injecting && !m.finished && r.bouncing < maxBouncing && m.doneAt.Before(t) {
			t = m.doneAt
		}
	}
	if idle, ok := r.q.slotsIdleAt(); ok && idle.Before(t) {
		t = idle
	}
	return min(t.Sub(now), heartbeatInterval), true
}

// saveTimes sets the mtime of every waiting channel file to its next
// attempt, so that the next Run keeps the schedule (qmail's utimes at exit).
func (r *run) saveTimes() {
	for _, c := range r.chans {
		for _, j := range c.waiting {
			if j.m.direct {
				continue // todo/N brings it back
			}
			p := r.q.path(kind(j.remote), j.m.id)
			if err := os.Chtimes(p, j.next, j.next); err != nil {
				r.warn("unable to utime " + Path(kind(j.remote), j.m.id, r.q.split) + "; message will be retried too soon")
			}
		}
	}
}

func kind(remote bool) string {
	if remote {
		return "remote"
	}
	return "local"
}

func chanIndex(remote bool) int {
	if remote {
		return 1
	}
	return 0
}

// startupScan finds the preprocessed messages (info/S/N without todo/N) and
// schedules each channel file at its mtime; a message with neither goes to
// completion. It notes the messages in todo/ that also have info, channel
// or bounce files: an interrupted pass left them.
func (r *run) startupScan() {
	r.held = r.q.heldIDs()
	todo := map[ID]bool{}
	if names, err := readNames(filepath.Join(r.q.dir, "todo")); err == nil {
		for _, n := range names {
			if id, ok := parseNum(n); ok {
				todo[id] = true
			}
		}
	} else {
		r.warn("unable to read todo: " + logSafe(err.Error()))
	}
	withDSN := map[ID]bool{}
	if names, err := readNames(filepath.Join(r.q.dir, "dsn")); err == nil {
		for _, n := range names {
			if id, ok := parseNum(n); ok {
				withDSN[id] = true
			}
		}
	}
	dirs := []string{filepath.Join(r.q.dir, "bounce")}
	for s := 0; s < r.q.split; s++ {
		for _, k := range []string{"local", "remote"} {
			dirs = append(dirs, filepath.Join(r.q.dir, k, strconv.Itoa(s)))
		}
	}
	for _, d := range dirs {
		names, _ := readNames(d)
		for _, n := range names {
			if id, ok := parseNum(n); ok && todo[id] {
				r.stale[id] = true
			}
		}
	}
	for s := 0; s < r.q.split; s++ {
		names, err := readNames(filepath.Join(r.q.dir, "info", strconv.Itoa(s)))
		if err != nil {
			r.warn("unable to read info/" + strconv.Itoa(s) + ": " + logSafe(err.Error()))
			continue
		}
		for _, n := range names {
			id, ok := parseNum(n)
			if ok && todo[id] {
				r.stale[id] = true
			}
			if !ok || todo[id] {
				continue
			}
			fi, err := os.Stat(r.q.path("info", id))
			if err != nil {
				continue
			}
			m := &msg{id: id, birth: fi.ModTime(), hasDSN: withDSN[id]}
			r.msgs[id] = m
			for _, remote := range []bool{false, true} {
				fi, err := os.Stat(r.q.path(kind(remote), id))
				if err != nil {
					continue
				}
				r.schedule(m, remote, fi.ModTime())
			}
			if m.jobs[0] == nil && m.jobs[1] == nil {
				r.toComplete(m, r.now())
			}
		}
	}
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (r *run) schedule(m *msg, remote bool, at time.Time) {
	j := &job{m: m, remote: remote, next: at, index: -1}
	m.jobs[chanIndex(remote)] = j
	heap.Push(&r.chans[chanIndex(remote)].waiting, j)
}

func (r *run) toComplete(m *msg, at time.Time) {
	if m.done {
		if at.Before(m.doneAt) {
			m.doneAt = at
		}
		return
	}
	m.done, m.doneAt = true, at
	r.completing = append(r.completing, m)
}
