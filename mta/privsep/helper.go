package privsep

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/lspawn"
	"github.com/qmailkit/qmailkit/pop3"
)

// Options configure the delivery helper that Start starts.
type Options struct {
	// Home is the qmail home whose users/cdb (with the system's passwd)
	// says under which uid each local recipient is delivered, and whose
	// users/poppasswd says who owns each POP3 maildrop. Required.
	Home string
	// Program is the program the helper, its qmail-local children and
	// the mailbox agents run: this one, which must call ChildMain first
	// thing in main. Empty means os.Executable(), resolved by Start
	// (while root: the account may not be able to read /proc/self/exe).
	Program string
	// DefaultDelivery is qmail-start's argument: the .qmail lines of users
	// without a .qmail file. Empty means "./Maildir/".
	DefaultDelivery string
	// DeliveryTimeout bounds each local delivery: then its processes are
	// killed and it is deferred. 0 means 1060 s (qmail-local's 1000 s for
	// each program, and a minute); negative means none.
	DeliveryTimeout time.Duration
	// Env is the environment of the deliveries' programs (filtered as
	// dotqmail.AllowedEnv filters it). It should carry QMAILHOME, and
	// QMAILQUEUE naming a qmail-queue that reaches the queue from a
	// user's uid (the queue is the account's alone: a program that hands
	// its descriptors to mta.System.ServeQueueSocket), so that forwards
	// are queued. nil means the process's environment without QMAILHOME,
	// QMAILQUEUE and the QMAILKIT_ variables, with QMAILHOME=Home.
	Env []string
	// Logger receives the log lines of the helper and of the mailbox
	// agents, which they write to it through a pipe (and whatever else
	// they write on their standard error, such as a panic, at level
	// ERROR). nil means slog.Default().
	Logger *slog.Logger
}

// Helper is a running delivery helper, made by Start: a copy of the
// program that kept root, connected to this process by a socketpair. It is the
// mta.LocalDeliverer of a System (mta.Options.LocalDeliverer) and opens
// the POP3 maildrops of other uids (OpenMailbox). It exits when Stop
// closes the socket, and is killed if this process dies.
type Helper struct {
	client  *lspawn.Client
	exited  chan struct{} // closed when the process has exited
	relayed chan struct{} // closed when the log relay has ended
	logs    *os.File      // the relay's end of the helper's stderr
}

// Start starts the delivery helper (the program with the helper's role,
// which ChildMain runs) and returns it, once it runs. The process must be
// root; it should then drop root with Drop. The helper is started from a
// thread of its own that lives as long as the helper does, so that it is
// killed (Pdeathsig) only when this process dies.
func Start(opts Options) (*Helper, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("privsep: the delivery helper needs root")
	}
	if opts.Home == "" {
		return nil, errors.New("privsep: no home")
	}
	home, err := filepath.Abs(opts.Home)
	if err != nil {
		return nil, fmt.Errorf("privsep: %w", err)
	}
	program := opts.Program
	if program == "" {
		if program, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("privsep: %w", err)
		}
	}
	def := opts.DefaultDelivery
	if def == "" {
		def = "./Maildir/"
	}
	timeout := opts.DeliveryTimeout
	if timeout == 0 {
		timeout = lspawn.DefaultDeliveryTimeout
	}
	env := opts.Env
	if env == nil {
		env = append(withoutQmailEnv(os.Environ()), "QMAILHOME="+home)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}

	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("privsep: socketpair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "lspawn"), os.NewFile(uintptr(fds[1]), "lspawn")
	defer mine.Close()
	defer theirs.Close()
	logs, logw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("privsep: %w", err)
	}
	cmd := exec.Command(program, "-home", home, "-defaultdelivery", def, "-program", program,
		"-deliverytimeout", timeout.String())
	cmd.Env = append(withoutRole(env), roleEnv+"=lspawn")
	cmd.ExtraFiles = []*os.File{theirs} // descriptor 3
	cmd.Stderr = logw
	cmd.Dir = "/"
	// A session of its own: no terminal's signals, and the processes it
	// kills (see reap.go) cannot be in the terminal's groups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	h := &Helper{exited: make(chan struct{}), relayed: make(chan struct{}), logs: logs}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig is sent when the thread that started the helper
		// ends: this goroutine keeps its thread until the helper has
		// exited (a goroutine that ends locked ends its thread).
		runtime.LockOSThread()
		defer close(h.exited)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
	}()
	err = <-started
	logw.Close()
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("privsep: start the delivery helper: %w", err)
	}
	go relay(logs, logger, h.relayed)
	c, err := net.FileConn(mine)
	if err != nil {
		return nil, fmt.Errorf("privsep: delivery helper: %w", err) // theirs closes: the helper exits
	}
	h.client = lspawn.NewClient(c.(*net.UnixConn))
	return h, nil
}

// Deliver has the helper deliver msg to the local recipient under the
// recipient's uid, as dotqmail.Local.Deliver does in a root process: the
// report is qmail-lspawn's, without its status letter, and the error nil,
// permanent or temporary. A message the helper cannot be asked to deliver
// (it is gone) is deferred.
func (h *Helper) Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
	return h.client.Deliver(ctx, sender, recipient, msg)
}

// OpenMailbox returns a pop3.Server.OpenMailbox for srv, the POP3 server
// of a program that has dropped root: a user whose uid and gid are the
// process's own (and not root's) is opened in-process, as pop3.Server does
// by default; any other through a mailbox agent that the helper runs under
// the uid and gid that users/poppasswd gives the user (never root), so
// that the kernel checks the user's rights on every file of the maildrop,
// as qmail-pop3d runs after checkpassword's setuid. srv's SeenOnRetr and
// Now are read at each call.
func (h *Helper) OpenMailbox(srv *pop3.Server) func(context.Context, *pop3.User) (pop3.Mailbox, error) {
	return func(ctx context.Context, u *pop3.User) (pop3.Mailbox, error) {
		if uid := os.Geteuid(); uid == 0 || u.UID != uid || u.GID != os.Getegid() {
			return h.client.OpenMailbox(ctx, u.Name, srv.SeenOnRetr)
		}
		path := u.Maildir
		if path == "" {
			if u.Home == "" {
				return nil, errors.New("pop3: user has no home directory")
			}
			path = filepath.Join(u.Home, "Maildir")
		}
		return pop3.OpenMaildir(path, pop3.MaildirOptions{User: u, Lock: true, WireSizes: true, Seen: srv.SeenOnRetr, MissingOK: true, MissingEmpty: !srv.Compat, Now: srv.Now})
	}
}

// Done is closed when the connection to the helper is lost: the helper has
// died, or Stop closed it. A program that has dropped root cannot start
// another, and should stop (nothing queued is lost).
func (h *Helper) Done() <-chan struct{} { return h.client.Done() }

// Err says why the connection to the helper was lost, once Done is closed.
func (h *Helper) Err() error { return h.client.Err() }

// Stop closes the connection to the helper, which then cancels the
// deliveries it is making (they are deferred), kills what they left
// running and exits; Stop waits until it has exited and its last log
// lines have been written to Options.Logger, or until ctx is done, and
// then returns an error wrapping ctx's. Stop the System first, so that
// no delivery is under way.
func (h *Helper) Stop(ctx context.Context) error {
	h.client.Close() // the helper's end sees EOF and exits
	select {
	case <-h.exited:
	case <-ctx.Done():
		return fmt.Errorf("privsep: the delivery helper has not exited: %w", ctx.Err())
	}
	select {
	case <-h.relayed:
	case <-ctx.Done():
		// A process the helper started still holds its stderr.
		h.logs.SetReadDeadline(time.Now())
		<-h.relayed
		return fmt.Errorf("privsep: the delivery helper's log is still open: %w", ctx.Err())
	}
	return nil
}

// maxLogLine bounds a log line of the helper; a longer one is relayed in
// pieces.
const maxLogLine = 64 << 10

// relay writes to logger the lines the helper and its mailbox agents
// write on r (their standard error): JSON records as the records they
// are, anything else (a panic, the race detector) as an error, until r
// ends. It then closes r and done.
func relay(r *os.File, logger *slog.Logger, done chan<- struct{}) {
	defer close(done)
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	ctx := context.Background()
	for {
		line, err := br.ReadSlice('\n')
		if text := bytes.TrimRight(line, "\n"); len(text) > 0 {
			rec, ok := parseRecord(text)
			if !ok {
				rec = slog.NewRecord(time.Now(), slog.LevelError, string(text), 0)
			}
			if logger.Enabled(ctx, rec.Level) {
				logger.Handler().Handle(ctx, rec)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// parseRecord makes a log record of a line of slog's JSON handler,
// keeping the order of its attributes.
func parseRecord(line []byte) (slog.Record, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return slog.Record{}, false
	}
	var (
		t     time.Time
		level = slog.LevelInfo
		msg   string
		attrs []slog.Attr
	)
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return slog.Record{}, false
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return slog.Record{}, false
		}
		s, isString := v.(string)
		switch {
		case key == slog.TimeKey && isString:
			t, _ = time.Parse(time.RFC3339Nano, s)
		case key == slog.LevelKey && isString:
			if level.UnmarshalText([]byte(s)) != nil {
				level = slog.LevelInfo
			}
		case key == slog.MessageKey && isString:
			msg = s
		default:
			attrs = append(attrs, slog.Any(key, jsonValue(v)))
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return slog.Record{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return slog.Record{}, false // more than one value on the line
	}
	if t.IsZero() {
		t = time.Now()
	}
	rec := slog.NewRecord(t, level, msg, 0)
	rec.AddAttrs(attrs...)
	return rec, true
}

// jsonValue is a decoded JSON value as a log value: numbers as int64
// when they are integers.
func jsonValue(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n.String()
}
