package inject

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/quote"
)

// Error is a fatal condition with the exact text qmail-inject (or sendmail)
// writes on standard error and its exit code: 100 when Perm, else 111.
type Error struct {
	Text string // what the program writes on standard error, byte for byte
	Perm bool   // exit 100, not 111
	Err  error  // the cause, if any
}

func (e *Error) Error() string {
	return "inject: " + strings.TrimSuffix(e.Text, "\n")
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether the failure is permanent (exit 100).
func (e *Error) Permanent() bool { return e.Perm }

// ExitCode is the exit status for err: 0 for nil, 100 when it is
// permanent, 111 otherwise.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if qmailkit.IsPermanent(err) {
		return 100
	}
	return 111
}

func fatal(text string, perm bool, err error) *Error {
	return &Error{Text: "qmail-inject: fatal: " + text, Perm: perm, Err: err}
}

func errNoMem() *Error { return fatal("out of memory\n", false, nil) }

func errRead(err error) *Error { return fatal("read error\n", false, err) }

// errParseLine is doordie's message: the line follows as it is (a header
// field ends in its own newline; a -f argument has none).
func errParseLine(line []byte) *Error {
	return fatal("unable to parse this line:\n"+string(line), true, nil)
}

// Injector is qmail-inject's configuration: what its environment and the
// control files say. [Load] fills it as qmail-inject does; a program may
// also fill it by hand. Its methods do not change it, so one Injector may
// prepare many messages, also concurrently.
type Injector struct {
	DefaultHost   string // appended as "@DefaultHost" to an address without "@"
	DefaultDomain string // appended as ".DefaultDomain" to a domain without a dot
	PlusDomain    string // replaces a domain's trailing "+" as ".PlusDomain"
	IDHost        string // right side of generated Message-IDs

	User       string // user of the default From ($QMAILUSER, ..., "anonymous")
	Host       string // host of the default From, when HasHost
	HasHost    bool
	Name       string // personal name in the default From, when HasName
	HasName    bool
	SenderUser string // user of the default envelope sender
	SenderHost string // its host, when HasSenderHost
	// HasSenderHost: without it, the default sender gets DefaultHost.
	HasSenderHost bool

	// The $QMAILINJECT letters.
	NameComment      bool // c: From: user@host (Name)
	DeleteReturnPath bool // s: incoming Return-Path fields are dropped unseen
	DeleteFrom       bool // f: incoming From fields are dropped unseen
	DeleteMessageID  bool // i: incoming Message-ID fields are dropped unseen
	VERPRecipient    bool // r: per-recipient VERP on the default sender
	VERPMessage      bool // m: per-message VERP on the default sender

	// MFT lists mailing-list addresses ($QMAILMFTFILE); nil turns
	// Mail-Followup-To off.
	MFT []string

	// Now gives the time for Date, Message-ID and VERPMessage, taken once
	// per message; nil means time.Now.
	Now func() time.Time
	// PID goes into Message-IDs and VERPMessage senders; 0 means
	// os.Getpid().
	PID int
	// MaxHeaderBytes bounds the header held in memory (the body is
	// streamed); 0 means 16 MiB. A longer header is qmail-inject's "out of
	// memory".
	MaxHeaderBytes int
}

// Load reads qmail-inject's configuration as it does at start: the
// environment through lookup (nil means os.LookupEnv), the file named by
// $QMAILMFTFILE (relative to the current directory), then home's control
// files defaultdomain, defaulthost, plusdomain and idhost (each defaulting
// to control/me, else to its own name), each overridden by its
// $QMAILDEFAULTDOMAIN, $QMAILDEFAULTHOST, $QMAILPLUSDOMAIN, $QMAILIDHOST.
// Errors are *Error with qmail-inject's texts.
func Load(home string, lookup func(string) (string, bool)) (*Injector, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	in := &Injector{}
	if opts, ok := lookup("QMAILINJECT"); ok {
		for i := 0; i < len(opts); i++ {
			switch opts[i] {
			case 'c':
				in.NameComment = true
			case 's':
				in.DeleteReturnPath = true
			case 'f':
				in.DeleteFrom = true
			case 'i':
				in.DeleteMessageID = true
			case 'r':
				in.VERPRecipient = true
			case 'm':
				in.VERPMessage = true
			}
		}
	}
	first := func(names ...string) (string, bool) {
		for _, n := range names {
			if v, ok := lookup(n); ok {
				return v, true
			}
		}
		return "", false
	}
	in.Host, in.HasHost = first("QMAILHOST", "MAILHOST")
	in.SenderHost, in.HasSenderHost = first("QMAILSHOST")
	if !in.HasSenderHost {
		in.SenderHost, in.HasSenderHost = in.Host, in.HasHost
	}
	var ok bool
	if in.User, ok = first("QMAILUSER", "MAILUSER", "USER", "LOGNAME"); !ok {
		in.User = "anonymous"
	}
	if in.SenderUser, ok = first("QMAILSUSER"); !ok {
		in.SenderUser = in.User
	}
	in.Name, in.HasName = first("QMAILNAME", "MAILNAME", "NAME")

	if name, ok := lookup("QMAILMFTFILE"); ok {
		list, err := readList(name)
		if err != nil {
			return nil, errRead(err)
		}
		in.MFT = list
	}

	if fi, err := os.Stat(home); err != nil || !fi.IsDir() {
		return nil, fatal("internal bug\n", false, err)
	}
	d := control.Dir{Home: home}
	if _, _, err := d.Me(); err != nil { // control_init
		return nil, errRead(err)
	}
	for _, c := range []struct {
		file, env string
		dst       *string
	}{
		{"defaultdomain", "QMAILDEFAULTDOMAIN", &in.DefaultDomain},
		{"defaulthost", "QMAILDEFAULTHOST", &in.DefaultHost},
		{"plusdomain", "QMAILPLUSDOMAIN", &in.PlusDomain},
		{"idhost", "QMAILIDHOST", &in.IDHost},
	} {
		v, err := d.LineDefault(c.file, true, c.file)
		if err != nil {
			return nil, errRead(err)
		}
		if e, ok := lookup(c.env); ok {
			v = e
		}
		*c.dst = v
	}
	if _, err := in.rewriter(); err != nil {
		return nil, err
	}
	return in, nil
}

// readList reads a list file as control_readfile does; a missing file is
// nil, nil.
func readList(name string) ([]string, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list := []string{}
	r := bufio.NewReader(f)
	for {
		l, err := r.ReadString('\n')
		if s := strings.TrimRight(l, " \t\n"); s != "" && s[0] != '#' {
			list = append(list, s)
		}
		if err == io.EOF {
			return list, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// rewriter tokenises the domain fragments; an unparsable one is doordie's
// error.
func (in *Injector) rewriter() (*rewriter, error) {
	var rw rewriter
	for _, f := range []struct {
		text string
		dst  *[]token
	}{
		{"." + in.DefaultDomain, &rw.defaultDomain},
		{"@" + in.DefaultHost, &rw.defaultHost},
		{"." + in.PlusDomain, &rw.plusDomain},
	} {
		toks, ok := tokenize([]byte(f.text))
		if !ok {
			return nil, errParseLine([]byte(f.text))
		}
		*f.dst = toks
	}
	return &rw, nil
}

func (in *Injector) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

func (in *Injector) pid() int {
	if in.PID != 0 {
		return in.PID
	}
	return os.Getpid()
}

func (in *Injector) maxHeader() int {
	if in.MaxHeaderBytes > 0 {
		return in.MaxHeaderBytes
	}
	return 16 << 20
}

// Rewrite applies qmail-inject's address rewriting to one bare address,
// as it does to a recipient argument: the address is quoted with quote2,
// tokenised, rewritten and unquoted. ok is false when it does not
// tokenise.
func (in *Injector) Rewrite(addr string) (string, bool, error) {
	rw, err := in.rewriter()
	if err != nil {
		return "", false, err
	}
	s, ok := rw.bare(addr)
	return s, ok, nil
}

func (rw *rewriter) bare(addr string) (string, bool) {
	toks, ok := tokenize([]byte(quote.Addr(addr)))
	if !ok {
		return "", false
	}
	reverse(toks)
	toks = rw.rewrite(toks)
	reverse(toks)
	return unquote(toks), true
}

// Sender rewrites a -f argument into the envelope sender; "" stays empty.
func (in *Injector) Sender(arg string) (string, error) {
	s, ok, err := in.Rewrite(arg)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errParseLine([]byte(quote.Addr(arg)))
	}
	return s, nil
}

// Recipient rewrites a recipient argument.
func (in *Injector) Recipient(arg string) (string, error) {
	s, ok, err := in.Rewrite(arg)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fatal("unable to parse address: "+arg+"\n", true, nil)
	}
	return s, nil
}

// date822 is qmail's date822fmt: "14 Nov 2023 22:13:20 -0000".
func date822(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %s %d %02d:%02d:%02d -0000", t.Day(), t.Month().String()[:3], t.Year(), t.Hour(), t.Minute(), t.Second())
}

// messageID is newfield_msgidmake's value, without the field name.
func messageID(t time.Time, pid int, idhost string) string {
	t = t.UTC()
	return fmt.Sprintf("<%d%02d%02d%02d%02d%02d.%s.qmail@%s>", t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second(), strconv.Itoa(pid), idhost)
}
