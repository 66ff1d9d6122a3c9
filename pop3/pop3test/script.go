package pop3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qmailkit/qmailkit/internal/scripttest"
	"github.com/qmailkit/qmailkit/pop3"
)

// Connect is the "command" of the greeting, for [At].
const Connect = "CONNECT"

// A Rule is one line of a server's script: where it applies (At, with
// OnAttempt and Times to narrow it) and what the server does there (Err,
// Drop, Delay). A Rule is a value: each method returns a changed copy.
//
//	srv.Script(pop3test.At("PASS").Err("[AUTH] authentication failed"))
//	srv.Script(pop3test.OnAttempt(1).At("RETR", "2").Drop())
type Rule struct {
	verb   string
	args   []string
	lim    scripttest.Limits // OnAttempt and Times
	delay  time.Duration
	err    string
	hasErr bool
	drop   bool
}

// At is a Rule for a command: its verb (without case; [Connect] for the
// greeting) and, when given, one of these arguments (compared without
// case: "USER bob", "RETR 2").
func At(verb string, args ...string) Rule { return Rule{}.At(verb, args...) }

// OnAttempt is a Rule for the attempts (connections, numbered from 1)
// numbered n; complete it with At.
func OnAttempt(n ...int) Rule { return Rule{}.OnAttempt(n...) }

// At sets the rule's command (see the function At).
func (r Rule) At(verb string, args ...string) Rule {
	r.verb = strings.ToUpper(verb)
	r.args = append([]string(nil), args...)
	return r
}

// OnAttempt limits the rule to the attempts numbered n.
func (r Rule) OnAttempt(n ...int) Rule {
	r.lim = r.lim.OnAttempt(n...)
	return r
}

// Times limits the rule to its first n uses; 0 (the default) means every
// time.
func (r Rule) Times(n int) Rule {
	r.lim.Times = n
	return r
}

// Err makes the server answer "-ERR " and text instead of passing the
// command on (the server never sees it). At Connect it is the greeting,
// and the connection is then closed.
func (r Rule) Err(text string) Rule {
	r.err, r.hasErr, r.drop = text, true, false
	return r
}

// Drop makes the server close the connection when the command arrives,
// without a reply (at Connect: before the greeting).
func (r Rule) Drop() Rule {
	r.drop, r.hasErr = true, false
	return r
}

// Delay makes the server wait d before its reply, or before the Drop. A
// rule with only a Delay lets the other rules, or the server, answer.
func (r Rule) Delay(d time.Duration) Rule {
	r.delay = d
	return r
}

// String describes the rule.
func (r Rule) String() string {
	s := r.lim.Prefix() + "at " + r.verb
	if len(r.args) > 0 {
		s += fmt.Sprintf(" %q", r.args)
	}
	if r.delay > 0 {
		s += ", delay " + r.delay.String()
	}
	switch {
	case r.drop:
		s += ", drop"
	case r.hasErr:
		s += ", -ERR " + r.err
	}
	return s + r.lim.Suffix()
}

func (r Rule) check() string {
	switch {
	case r.verb == "":
		return "no command (use At)"
	case strings.ContainsAny(r.verb, " \r\n"):
		return "a command is one word"
	case strings.ContainsAny(r.err, "\r\n"):
		return "an -ERR text is one line"
	case !r.hasErr && !r.drop && r.delay <= 0:
		return "no Err, Drop or Delay"
	}
	return r.lim.Check()
}

// matches reports whether the rule is for this command (its attempts are
// the script's to check).
func (r Rule) matches(verb, arg string) bool {
	if r.verb != verb {
		return false
	}
	if len(r.args) == 0 {
		return true
	}
	for _, a := range r.args {
		if strings.EqualFold(a, arg) {
			return true
		}
	}
	return false
}

// entry is r as the script holds it.
func (r Rule) entry() scripttest.Entry[Rule] {
	return scripttest.Entry[Rule]{Rule: r, Limits: r.lim, Delay: r.delay, DelayOnly: !r.hasErr && !r.drop}
}

type action struct {
	delay  time.Duration
	err    string
	hasErr bool
	drop   bool
}

// Script adds rules to the script. For each command, the rules that apply
// are taken in order: every rule with only a Delay waits its delay, and the
// first with Err or Drop waits its own and decides; without one the server
// answers. Script panics on a rule that cannot apply (a mistake in the
// test).
func (s *Server) Script(rules ...Rule) {
	for _, r := range rules {
		if msg := r.check(); msg != "" {
			panic("pop3test: Script(" + r.String() + "): " + msg)
		}
	}
	es := make([]scripttest.Entry[Rule], len(rules))
	for i, r := range rules {
		es[i] = r.entry()
	}
	s.script.Add(es...)
}

// ClearScript removes every rule.
func (s *Server) ClearScript() { s.script.Clear() }

func (s *Server) match(verb, arg string, n int) action {
	delay, r, ok := s.script.Match(n,
		func(r Rule) bool { return r.matches(verb, arg) },
		func(Rule) bool { return true })
	act := action{delay: delay}
	if ok {
		act.err, act.hasErr, act.drop = r.err, r.hasErr, r.drop
	}
	return act
}

// An Attempt is one connection and what was said on it.
type Attempt struct {
	// Number is the attempt's number, from 1.
	Number int
	// Client is the client's address, "127.0.0.1:54321".
	Client string
	// Greeting is the server's first line ("" if dropped before it).
	Greeting string
	// User is the user who logged in, "" if none did.
	User string
	// Commands are the command lines in order, each with its reply.
	Commands []Command
	// Dropped is the command (verb) at which the script dropped the
	// connection, Connect before the greeting, "" if it did not.
	Dropped string
}

// Command is a command line and the first line of its reply.
type Command struct {
	// Line is the line as the client sent it, without its line end (a
	// PASS line with its password).
	Line string
	// Reply is the reply's first line ("+OK 2 messages", "-ERR ..."), ""
	// for none (the connection was dropped, or closed first).
	Reply string
	// Scripted says the reply came from the script, not the server.
	Scripted bool
}

// String gives the attempt on one line: its number, the greeting, then
// each command and its reply.
//
//	#1 +OK POP3 server ready; USER bob: +OK; PASS secret: +OK 1 messages; QUIT: +OK bye
func (a Attempt) String() string {
	var b strings.Builder
	b.WriteString("#" + strconv.Itoa(a.Number))
	if a.Greeting != "" {
		b.WriteString(" " + a.Greeting)
	} else if a.Dropped == Connect {
		b.WriteString(" dropped")
	}
	for _, c := range a.Commands {
		r := c.Reply
		if r == "" {
			r = "(no reply)"
		}
		b.WriteString("; " + c.Line + ": " + r)
	}
	return b.String()
}

func (a *Attempt) clone() Attempt {
	c := *a
	c.Commands = append([]Command(nil), a.Commands...)
	return c
}

// Attempts returns the attempts so far, in order.
func (s *Server) Attempts() []Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Attempts((*Attempt).clone)
}

// Reset forgets the attempts; the next connection is attempt 1 again.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.Reset()
}

// maxLine bounds a line the connection holds back from the server; a
// longer one is passed on as it comes, for the server to refuse.
const maxLine = 64 << 10

// conn is an accepted connection. It hands the server one command line
// per Read, after the script has seen it, and reads the first line of
// each reply from the server's writes: the server flushes its replies
// before it reads again, so each reply follows its command.
type conn struct {
	net.Conn
	s *Server
	a *Attempt

	// Used by the session's goroutine only.
	buf        []byte // for reads from the client
	in         []byte // read from the client, not yet handed on
	out        []byte // handed on, not yet read by the server
	cur        int    // index in a.Commands of the command being answered, -1 for the greeting
	started    bool   // greeting written
	greetDelay time.Duration
	passThru   bool // after STLS: bytes pass unseen
	stls       bool // the command being answered is STLS
	closeOnce  sync.Once
}

func (c *conn) Read(p []byte) (int, error) {
	if c.passThru && len(c.out) == 0 {
		if len(c.in) > 0 {
			c.out, c.in = c.in, nil
		} else {
			return c.Conn.Read(p)
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, 4096)
	}
	buf := c.buf
	for len(c.out) == 0 {
		if i := bytes.IndexByte(c.in, '\n'); i >= 0 {
			line := c.in[:i+1]
			c.in = c.in[i+1:]
			if c.command(line) {
				c.out = line
			}
			continue
		}
		if len(c.in) > maxLine {
			c.out, c.in = c.in, nil
			break
		}
		n, err := c.Conn.Read(buf)
		c.in = append(c.in, buf[:n]...)
		if err != nil && n == 0 {
			if len(c.in) > 0 {
				c.out, c.in = c.in, nil
				break
			}
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// command runs the script on a command line and records it; it reports
// whether the line goes on to the server.
func (c *conn) command(line []byte) bool {
	text := strings.TrimRight(string(line), "\r\n")
	verb, arg := pop3.ParseCommand(text)
	s := c.s
	s.mu.Lock()
	c.a.Commands = append(c.a.Commands, Command{Line: text})
	c.cur = len(c.a.Commands) - 1
	s.mu.Unlock()
	act := s.match(verb, arg, c.a.Number)
	if !s.lc.Sleep(context.Background(), act.delay) {
		c.Close()
		return false
	}
	switch {
	case act.drop:
		s.mu.Lock()
		c.a.Dropped = verb
		s.mu.Unlock()
		c.Close()
		return false
	case act.hasErr:
		reply := "-ERR " + act.err
		s.mu.Lock()
		cmd := &c.a.Commands[c.cur]
		cmd.Reply, cmd.Scripted = reply, true
		s.mu.Unlock()
		c.Conn.Write([]byte(reply + "\r\n"))
		return false
	}
	c.stls = verb == "STLS"
	return true
}

func (c *conn) Write(p []byte) (int, error) {
	if !c.passThru {
		if !c.started && c.greetDelay > 0 {
			c.s.lc.Sleep(context.Background(), c.greetDelay)
		}
		first, _, _ := bytes.Cut(p, []byte("\r\n"))
		c.s.mu.Lock()
		switch {
		case !c.started:
			c.a.Greeting = string(first)
		case c.cur >= 0 && c.cur < len(c.a.Commands) && c.a.Commands[c.cur].Reply == "":
			c.a.Commands[c.cur].Reply = string(first)
		}
		c.s.mu.Unlock()
		c.started = true
		if c.stls && bytes.HasPrefix(p, []byte("+OK")) {
			c.passThru = true
		}
	}
	return c.Conn.Write(p)
}

// Close closes the connection and forgets it.
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.s.mu.Lock()
		c.s.rec.End(c.RemoteAddr().String(), c)
		c.s.mu.Unlock()
	})
	return err
}

// accepted numbers a connection the listener accepted and runs the
// script's Connect rules: it returns the connection for the engine, or
// false when the script refuses it.
func (s *Server) accepted(nc net.Conn) (net.Conn, bool) {
	c := &conn{Conn: nc, s: s, cur: -1}
	client := nc.RemoteAddr().String()
	s.mu.Lock()
	c.a = s.rec.Begin(client, c, func(n int) *Attempt { return &Attempt{Number: n, Client: client} })
	s.mu.Unlock()
	act := s.match(Connect, "", c.a.Number)
	if !act.drop && !act.hasErr {
		c.greetDelay = act.delay
		return c, true
	}
	s.lc.Go(func() {
		defer c.Close()
		if !s.lc.Sleep(context.Background(), act.delay) {
			return
		}
		s.mu.Lock()
		if act.drop {
			c.a.Dropped = Connect
		} else {
			c.a.Greeting = "-ERR " + act.err
		}
		s.mu.Unlock()
		if act.hasErr {
			c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Conn.Write([]byte("-ERR " + act.err + "\r\n"))
		}
	})
	return nil, false
}
