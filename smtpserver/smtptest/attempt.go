package smtptest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// An Attempt is one connection a client made to the server, accepted or
// refused, and what was said on it: an attempt to send mail, as a client
// that retries makes one per try. Attempts are numbered from 1 in the
// order the server accepted them (the numbers [OnAttempt] uses); several
// messages sent on one connection are several [Transaction]s of one
// attempt.
//
// Replies are those the server chose for the commands it recorded: its
// greeting, and every MAIL, RCPT and DATA that reached the test server.
// Commands the engine refuses before asking (a syntax error, a relay
// refusal when rcpthosts are configured, a RCPT before MAIL, a message
// over the size limit) are not recorded.
type Attempt struct {
	// Number is the attempt's number, from 1.
	Number int
	// Client is the client's address, "127.0.0.1:54321".
	Client string
	// Greeting is the server's first reply: 220, or the scripted refusal.
	// It is zero when the connection was dropped before it.
	Greeting smtpserver.Reply
	// Helo is the last HELO, EHLO or LHLO argument seen; User the AUTH
	// user, TLS whether STARTTLS was used (as last seen by a MAIL, RCPT
	// or DATA).
	Helo string
	User string
	TLS  bool
	// Transactions are the MAIL commands of the connection, each with
	// what followed it.
	Transactions []Transaction
	// Dropped is the stage at which the script dropped the connection, 0
	// if it did not.
	Dropped Stage
}

// A Transaction is one MAIL and what followed it until the next MAIL or
// the end of the connection.
type Transaction struct {
	// From is the envelope sender, and Mail the reply to MAIL.
	From string
	Mail smtpserver.Reply
	// Rcpts are the recipients given with RCPT, each with its reply.
	Rcpts []Rcpt
	// Data is the reply that ended DATA (or BDAT): the refusal of the
	// command itself (at StageDataCommand), or the reply after the
	// message. It is zero when DATA was not given, the connection was
	// dropped, or the engine refused the message itself (too big, a
	// loop, a bare CR). For an accepted message it is the server's "250
	// 2.0.0 ok <time> qp <id>", its time read as the message was
	// accepted. In LMTP mode it is the reply of the first recipient; each
	// Rcpt has its own.
	Data smtpserver.Reply
	// Message is the message, when the client sent it whole (accepted or
	// not: Data says, and an accepted one has its ID); nil otherwise.
	Message *Message
}

// Rcpt is one RCPT and its reply.
type Rcpt struct {
	Addr  string
	Reply smtpserver.Reply
	// Data is the reply after the data for this recipient, in LMTP mode.
	Data smtpserver.Reply
}

// String gives the attempt on one line, as a test prints it: the number,
// then each reply, 2xx replies by their code only (their texts hold times
// and ids), others whole:
//
//	#2 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA 451 4.3.0 try later
func (a Attempt) String() string {
	var b strings.Builder
	b.WriteString("#" + strconv.Itoa(a.Number))
	part := func(s string) {
		b.WriteString(s)
	}
	switch {
	case a.Greeting.Code != 0:
		part(" " + shortReply(a.Greeting))
	case a.Dropped == StageConnect:
		part(" dropped")
	}
	for _, t := range a.Transactions {
		part("; MAIL <" + t.From + "> " + shortReply(t.Mail))
		for _, r := range t.Rcpts {
			part("; RCPT <" + r.Addr + "> " + shortReply(r.Reply))
		}
		if t.Data.Code != 0 {
			part("; DATA " + shortReply(t.Data))
		}
	}
	switch a.Dropped { // at MAIL and RCPT, the reply says "dropped"
	case StageDataCommand:
		part("; DATA dropped")
	case StageData:
		part("; DATA dropped after the message")
	}
	return b.String()
}

func shortReply(r smtpserver.Reply) string {
	switch {
	case r.Code == 0:
		return "dropped"
	case r.Code < 400:
		return strconv.Itoa(r.Code)
	}
	return replyString(r)
}

func replyString(r smtpserver.Reply) string {
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	return s + " " + strings.ReplaceAll(r.Text, "\n", " / ")
}

// clone copies a so that the caller may keep it.
func (a *Attempt) clone() Attempt {
	c := *a
	c.Transactions = make([]Transaction, len(a.Transactions))
	for i, t := range a.Transactions {
		t.Rcpts = append([]Rcpt(nil), t.Rcpts...)
		if t.Message != nil {
			m := *t.Message
			t.Message = &m
		}
		c.Transactions[i] = t
	}
	return c
}

// Attempts returns the attempts so far, in order, each as it stands.
func (s *Server) Attempts() []Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Attempts((*Attempt).clone)
}

// errDropped is what a hook returns for a dropped connection: the server
// writes its reply to a closed connection, and the session ends.
var errDropped = errors.New("smtptest: connection dropped by the script")

// errClosing is a hook's error when the server closes (or the session
// ends) during a scripted delay: a temporary failure.
var errClosing = errors.New("smtptest: server closing")

// conn is an accepted connection: it records the greeting and the first
// command line (before any TLS), delays the greeting, and is closed by
// the script.
type conn struct {
	net.Conn
	s          *Server
	a          *Attempt
	greetDelay time.Duration

	// Only the session's goroutine reads and writes.
	greet     []byte
	greetDone bool
	first     []byte
	firstDone bool

	closeAfterWrite atomic.Bool
	closeOnce       sync.Once
}

func (c *conn) Write(p []byte) (int, error) {
	if !c.greetDone {
		if c.greetDelay > 0 {
			c.s.lc.Sleep(context.Background(), c.greetDelay)
			c.greetDelay = 0
		}
		c.noteGreeting(p)
	}
	n, err := c.Conn.Write(p)
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

// noteGreeting reads the server's greeting from what it writes first.
func (c *conn) noteGreeting(p []byte) {
	c.greet = append(c.greet, p...)
	var r smtpserver.Reply
	rest := c.greet
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 || len(c.greet) > 64<<10 {
			c.greetDone = len(c.greet) > 64<<10
			return
		}
		line := string(rest[:i])
		rest = rest[i+2:]
		if len(line) < 4 {
			c.greetDone = true
			return
		}
		code, _ := strconv.Atoi(line[:3])
		if r.Text != "" {
			r.Text += "\n"
		}
		r.Code, r.Text = code, r.Text+line[4:]
		if line[3] != '-' {
			break
		}
	}
	c.greetDone, c.greet = true, nil
	c.s.mu.Lock()
	c.a.Greeting = r
	c.s.mu.Unlock()
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.firstDone && n > 0 {
		c.first = append(c.first, p[:n]...)
		if i := bytes.IndexByte(c.first, '\n'); i >= 0 || len(c.first) > 1024 {
			c.firstDone = true
			if i >= 0 {
				verb, arg, _ := strings.Cut(strings.TrimRight(string(c.first[:i]), "\r"), " ")
				switch strings.ToUpper(verb) {
				case "HELO", "EHLO", "LHLO":
					c.s.mu.Lock()
					c.a.Helo = strings.TrimSpace(arg)
					c.s.mu.Unlock()
				}
			}
			c.first = nil
		}
	}
	return n, err
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
// script's StageConnect: it returns the connection for the engine, or
// false when the script refuses it (refuse runs the refusal).
func (s *Server) accepted(nc net.Conn) (net.Conn, bool) {
	c := &conn{Conn: nc, s: s}
	client := nc.RemoteAddr().String()
	s.mu.Lock()
	c.a = s.rec.Begin(client, c, func(n int) *Attempt { return &Attempt{Number: n, Client: client} })
	s.mu.Unlock()
	act := s.match(StageConnect, c.a.Number, nil, nil)
	if !act.decided() {
		c.greetDelay = act.delay
		return c, true
	}
	s.lc.Go(func() { s.refuse(c, act) })
	return nil, false
}

// refuse runs a session refused at the greeting.
func (s *Server) refuse(c *conn, act action) {
	defer c.Close()
	if !s.lc.Sleep(context.Background(), act.delay) {
		return
	}
	s.mu.Lock()
	if act.drop {
		c.a.Dropped = StageConnect
	} else {
		c.a.Greeting = *act.reply
	}
	s.mu.Unlock()
	if act.drop {
		return
	}
	r := *act.reply
	c.Conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Conn.Write(formatReply(r, !s.Engine.Compat)); err != nil || r.Code == 421 {
		return
	}
	// RFC 5321 section 3.1: after a 554 greeting the server waits for
	// QUIT, answering 503 to anything else.
	br := bufio.NewReaderSize(c.Conn, 1024)
	for range 100 {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimSpace(string(line)), " ")
		if strings.EqualFold(verb, "QUIT") {
			c.Conn.Write(formatReply(smtpserver.Reply{Code: 221, Enhanced: "2.0.0", Text: "bye"}, !s.Engine.Compat))
			return
		}
		if _, err := c.Conn.Write(formatReply(smtpserver.Reply{Code: 503, Enhanced: "5.5.1", Text: "bad sequence of commands"}, !s.Engine.Compat)); err != nil {
			return
		}
	}
}

// formatReply writes r as reply lines.
func formatReply(r smtpserver.Reply, enhanced bool) []byte {
	var b []byte
	lines := strings.Split(r.Text, "\n")
	for i, l := range lines {
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if i < len(lines)-1 {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		if enhanced && r.Enhanced != "" {
			b = append(b, r.Enhanced+" "...)
		}
		for j := 0; j < len(l); j++ {
			if ch := l[j]; ch < 32 || ch == 127 {
				b = append(b, '?')
			} else {
				b = append(b, ch)
			}
		}
		b = append(b, '\r', '\n')
	}
	return b
}

// session returns the connection a hook is called for, noting the
// session's details in its attempt. It is nil for a connection the test
// server did not accept (Engine.ServeConn called by the test).
func (s *Server) session(ss *smtpserver.Session) *conn {
	if ss == nil || ss.RemoteAddr == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.rec.Conn(ss.RemoteAddr.String())
	if c != nil {
		c.a.Helo, c.a.User, c.a.TLS = ss.Helo, ss.User, ss.TLS != nil
	}
	return c
}

// hookError is a hook's error with the reply the test server chose for it
// (and recorded): errors.As finds the reply first, and the error it wraps
// keeps its reason for the server's log.
type hookError struct {
	r   smtpserver.Reply
	err error
}

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// As gives the reply to errors.As.
func (e *hookError) As(target any) bool {
	if p, ok := target.(*smtpserver.Reply); ok {
		*p = e.r
		return true
	}
	return false
}

// replyFor is the reply smtpserver gives for a hook's error: the Reply it
// carries, else perm or temp by its permanence.
func replyFor(err error, temp, perm smtpserver.Reply) smtpserver.Reply {
	var r smtpserver.Reply
	if errors.As(err, &r) && r.Code >= 400 && r.Code < 600 {
		return r
	}
	if qmailkit.IsPermanent(err) {
		return perm
	}
	return temp
}

// The replies smtpserver gives when a hook returns nil, and for a hook's
// error that carries no Reply.
var (
	replyMailOK   = smtpserver.Reply{Code: 250, Enhanced: "2.1.0", Text: "ok"}
	replyRcptOK   = smtpserver.Reply{Code: 250, Enhanced: "2.1.5", Text: "ok"}
	replyMailTemp = smtpserver.Reply{Code: 451, Enhanced: "4.3.0", Text: "temporary failure checking sender"}
	replyMailPerm = smtpserver.Reply{Code: 553, Enhanced: "5.7.1", Text: "sorry, that sender is not accepted here"}
	replyRcptTemp = smtpserver.Reply{Code: 451, Enhanced: "4.3.0", Text: "temporary failure checking recipient"}
	replyRcptPerm = smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name (#5.1.1)"}
	replyQqTemp   = smtpserver.Reply{Code: 451, Text: "qq temporary problem (#4.3.0)"}
	replyQqPerm   = smtpserver.Reply{Code: 554, Text: "mail server permanently rejected message (#5.3.0)"}
)

// scripted carries out a decided action for a hook: it records the reply
// with note, and returns the hook's error.
func (s *Server) scripted(c *conn, stage Stage, act action, note func(smtpserver.Reply)) error {
	s.mu.Lock()
	if act.drop {
		c.a.Dropped = stage
		note(smtpserver.Reply{})
	} else {
		note(*act.reply)
	}
	s.mu.Unlock()
	if act.drop {
		c.Close()
		return errDropped
	}
	if act.reply.Code == 421 {
		c.closeAfterWrite.Store(true)
	}
	return *act.reply
}

// installHooks wraps the engine's CheckSender and CheckRecipient (set with
// Configure) in the script, and sets the Enqueuer.
func (s *Server) installHooks() {
	userSender := s.Engine.CheckSender
	s.Engine.CheckSender = func(ctx context.Context, ss *smtpserver.Session, from string) error {
		c := s.session(ss)
		if c == nil {
			if userSender != nil {
				return userSender(ctx, ss, from)
			}
			return nil
		}
		act := s.match(StageMail, c.a.Number, []string{from}, nil)
		if !s.lc.Sleep(ctx, act.delay) {
			return errClosing
		}
		note := func(r smtpserver.Reply) {
			c.a.Transactions = append(c.a.Transactions, Transaction{From: from, Mail: r})
		}
		if act.decided() {
			return s.scripted(c, StageMail, act, note)
		}
		var err error
		r := replyMailOK
		if userSender != nil {
			if err = userSender(ctx, ss, from); err != nil {
				r = replyFor(err, replyMailTemp, replyMailPerm)
				err = &hookError{r, err}
			}
		}
		s.mu.Lock()
		note(r)
		s.mu.Unlock()
		return err
	}
	userRcpt := s.Engine.CheckRecipient
	s.Engine.CheckRecipient = func(ctx context.Context, ss *smtpserver.Session, to string) error {
		c := s.session(ss)
		if c == nil {
			if userRcpt != nil {
				return userRcpt(ctx, ss, to)
			}
			return nil
		}
		act := s.match(StageRcpt, c.a.Number, []string{to}, nil)
		if !s.lc.Sleep(ctx, act.delay) {
			return errClosing
		}
		note := func(r smtpserver.Reply) {
			if n := len(c.a.Transactions); n > 0 {
				t := &c.a.Transactions[n-1]
				t.Rcpts = append(t.Rcpts, Rcpt{Addr: to, Reply: r})
			}
		}
		if act.decided() {
			return s.scripted(c, StageRcpt, act, note)
		}
		var err error
		r := replyRcptOK
		if userRcpt != nil {
			if err = userRcpt(ctx, ss, to); err != nil {
				r = replyFor(err, replyRcptTemp, replyRcptPerm)
				err = &hookError{r, err}
			}
		}
		s.mu.Lock()
		note(r)
		s.mu.Unlock()
		return err
	}
	s.Engine.Enqueuer = smtpserver.EnqueuerFunc(s.enqueue)
}

// transaction returns the attempt's current transaction; s.mu is held.
func (c *conn) transaction() *Transaction {
	if len(c.a.Transactions) == 0 {
		c.a.Transactions = append(c.a.Transactions, Transaction{})
	}
	return &c.a.Transactions[len(c.a.Transactions)-1]
}

func (s *Server) enqueue(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	ss := smtpserver.SessionFrom(ctx)
	c := s.session(ss)
	n := 0
	if c != nil {
		n = c.a.Number
	}
	act := s.match(StageDataCommand, n, to, nil)
	if !s.lc.Sleep(ctx, act.delay) {
		return "", errClosing
	}
	if act.decided() {
		if c == nil {
			return "", act.result()
		}
		return "", s.scripted(c, StageDataCommand, act, func(r smtpserver.Reply) { c.transaction().Data = r })
	}
	data, first, err := readMessage(r)
	if err != nil {
		return "", err
	}
	m := Message{From: from, To: append([]string(nil), to...), Data: data, Raw: rawMessage(data, first), Attempt: n}
	if ss != nil {
		m.Helo, m.User, m.TLS = ss.Helo, ss.User, ss.TLS != nil
	}
	if c != nil {
		s.mu.Lock()
		kept := m
		c.transaction().Message = &kept
		s.mu.Unlock()
	}
	act = s.match(StageData, n, to, &m)
	if !s.lc.Sleep(ctx, act.delay) {
		return "", errClosing
	}
	switch {
	case act.err != nil:
		return s.refuseMessage(c, m, act.err)
	case act.decided() && c == nil:
		return "", act.result()
	case act.decided():
		return "", s.scripted(c, StageData, act, func(r smtpserver.Reply) { c.transaction().Data = r })
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.add(m)
	if c != nil {
		r := smtpserver.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok " + strconv.FormatInt(s.now().Unix(), 10) + " qp " + id}
		t := c.transaction()
		t.Data = r
		if t.Message != nil {
			t.Message.ID = id
		}
		if s.Engine.LMTP {
			for i := range t.Rcpts {
				if t.Rcpts[i].Reply.Code/100 == 2 {
					t.Rcpts[i].Data = r
				}
			}
		}
	}
	return id, nil
}

// readMessage reads the message to its end, and returns with it the
// length of the first read, which holds the Received line (see rawMessage).
func readMessage(r io.Reader) (data []byte, first int, err error) {
	buf := make([]byte, 64<<10)
	for first == 0 && err == nil {
		first, err = r.Read(buf)
	}
	if err != nil && err != io.EOF {
		return nil, 0, err
	}
	var rest bytes.Buffer
	rest.Write(buf[:first])
	if err == nil {
		_, err = rest.ReadFrom(r)
	}
	if err != nil && err != io.EOF {
		return nil, 0, err
	}
	return rest.Bytes(), first, nil
}

// refuseMessage refuses a message for FailMessages' error, keeping it for
// the recipients that succeeded in LMTP mode.
func (s *Server) refuseMessage(c *conn, m Message, err error) (string, error) {
	var each smtpserver.RecipientErrors
	if !errors.As(err, &each) || !s.Engine.LMTP || len(each) != len(m.To) {
		r := replyFor(err, replyQqTemp, replyQqPerm)
		if c != nil {
			s.mu.Lock()
			c.transaction().Data = r
			s.mu.Unlock()
		}
		return "", &hookError{r, err}
	}
	// LMTP: a reply per recipient; the message is kept for those that
	// succeeded.
	to := m.To
	out := make(smtpserver.RecipientErrors, len(each))
	replies := make([]smtpserver.Reply, len(each))
	var ok []string
	for i, e := range each {
		if e == nil {
			ok = append(ok, to[i])
			replies[i] = smtpserver.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}
			continue
		}
		replies[i] = replyFor(e, replyQqTemp, replyQqPerm)
		out[i] = &hookError{replies[i], e}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ok) > 0 {
		m.To = ok
		s.add(m)
	}
	if c != nil {
		t := c.transaction()
		for i := range t.Rcpts {
			if t.Rcpts[i].Reply.Code/100 != 2 {
				continue
			}
			for k, addr := range to {
				if addr == t.Rcpts[i].Addr {
					t.Rcpts[i].Data = replies[k]
					if t.Data.Code == 0 {
						t.Data = replies[k]
					}
					break
				}
			}
		}
	}
	return "", out
}
