package smtptest

import (
	"fmt"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/internal/scripttest"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// Stage is a point of an SMTP session where the script can change the
// server's reply.
type Stage int

// The stages, in the order of a session.
const (
	// StageConnect is the greeting: a scripted reply replaces the 220 (a
	// 554 refuses the session and answers every command but QUIT with
	// 503, as RFC 5321 section 3.1 asks; a 421 is written and the
	// connection closed), a Drop closes the connection before any
	// greeting, and a Delay delays the greeting.
	StageConnect Stage = iota + 1
	// StageMail is the reply to MAIL.
	StageMail
	// StageRcpt is the reply to RCPT.
	StageRcpt
	// StageDataCommand is the reply to the DATA command itself: a
	// scripted reply replaces the 354, so the client never sends the
	// message. With BDAT it is the reply to the first chunk.
	StageDataCommand
	// StageData is the reply after the message (after DATA's final dot,
	// or BDAT's LAST chunk): a scripted reply refuses a message that was
	// received whole, and a Drop closes the connection once it has been
	// received, without a reply.
	StageData
)

var stageNames = [...]string{"", "connect", "MAIL", "RCPT", "DATA command", "DATA"}

// String names the stage.
func (st Stage) String() string {
	if st > 0 && int(st) < len(stageNames) {
		return stageNames[st]
	}
	return fmt.Sprintf("Stage(%d)", int(st))
}

// A Rule is one line of a server's script: where it applies (At, with
// OnAttempt and Times to narrow it) and what the server does there (Reply,
// Drop, Delay). Build one by chaining:
//
//	srv.Script(smtptest.At(smtptest.StageRcpt, "bob@example.com").Reply(550, "5.1.1", "no such user"))
//	srv.Script(smtptest.OnAttempt(1).At(smtptest.StageData).Reply(451, "4.3.0", "try later"))
//	srv.Script(smtptest.At(smtptest.StageData).Drop().Times(1))
//
// A Rule is a value: each method returns a changed copy.
type Rule struct {
	stage Stage
	addrs []string
	lim   scripttest.Limits // OnAttempt and Times
	delay time.Duration
	reply *smtpserver.Reply
	drop  bool
	// decide is FailMessages' function: a non-nil error refuses the
	// message (StageData only).
	decide func(Message) error
	// key names a rule set by FailRecipient, FailMessages or Delay, which
	// the next call with the same key replaces.
	key string
}

// At is a Rule for a stage. With addresses, it applies only to them
// (compared without case): at StageMail to these senders ("" is the null
// sender), at StageRcpt to these recipients, at StageDataCommand and
// StageData to a transaction with one of them among its recipients.
// StageConnect takes no address.
func At(stage Stage, addrs ...string) Rule { return Rule{}.At(stage, addrs...) }

// OnAttempt is a Rule for the attempts (connections, numbered from 1 in
// the order the server accepted them) numbered n; complete it with At.
func OnAttempt(n ...int) Rule { return Rule{}.OnAttempt(n...) }

// At sets the rule's stage and addresses (see the function At).
func (r Rule) At(stage Stage, addrs ...string) Rule {
	r.stage = stage
	r.addrs = append([]string(nil), addrs...)
	return r
}

// OnAttempt limits the rule to the attempts numbered n (see the function
// OnAttempt).
func (r Rule) OnAttempt(n ...int) Rule {
	r.lim = r.lim.OnAttempt(n...)
	return r
}

// Times limits the rule to its first n uses; once used up it no longer
// applies. It expresses "451 then 250" within one connection, as OnAttempt
// does across connections. 0 (the default) means every time.
func (r Rule) Times(n int) Rule {
	r.lim.Times = n
	return r
}

// Reply makes the server answer with this reply (a 4xx or 5xx; enhanced
// may be empty) instead of its own. The enhanced code is written after
// EHLO, not after HELO (RFC 2034). A 421 closes the connection after the
// reply, as RFC 5321 section 3.8 says it does.
func (r Rule) Reply(code int, enhanced, text string) Rule {
	r.reply = &smtpserver.Reply{Code: code, Enhanced: enhanced, Text: text}
	r.drop = false
	return r
}

// Drop makes the server close the connection without a reply: at
// StageConnect before the greeting, at StageMail, StageRcpt and
// StageDataCommand when the command arrives, at StageData once the message
// has been received whole (a client then cannot know whether it was
// accepted).
func (r Rule) Drop() Rule {
	r.drop = true
	r.reply = nil
	return r
}

// Delay makes the server wait d before its reply (or before the Drop). A
// rule with only a Delay slows the stage and lets the other rules, or the
// server, decide the reply.
func (r Rule) Delay(d time.Duration) Rule {
	r.delay = d
	return r
}

// String describes the rule, for test failures.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(r.lim.Prefix())
	fmt.Fprintf(&b, "at %v", r.stage)
	if len(r.addrs) > 0 {
		fmt.Fprintf(&b, " %q", r.addrs)
	}
	if r.delay > 0 {
		fmt.Fprintf(&b, ", delay %v", r.delay)
	}
	switch {
	case r.drop:
		b.WriteString(", drop")
	case r.reply != nil:
		fmt.Fprintf(&b, ", reply %s", replyString(*r.reply))
	case r.decide != nil:
		b.WriteString(", FailMessages")
	}
	b.WriteString(r.lim.Suffix())
	return b.String()
}

// check reports what makes the rule unusable, or "".
func (r Rule) check() string {
	switch {
	case r.stage < StageConnect || r.stage > StageData:
		return "no stage (use At)"
	case r.stage == StageConnect && len(r.addrs) > 0:
		return "StageConnect takes no address"
	case r.reply != nil && (r.reply.Code < 400 || r.reply.Code > 599):
		return fmt.Sprintf("reply code %d: only 4xx and 5xx replies can be scripted", r.reply.Code)
	case r.reply == nil && !r.drop && r.decide == nil && r.delay <= 0:
		return "no Reply, Drop or Delay"
	}
	return r.lim.Check()
}

// matches reports whether the rule is for stage and the addresses of the
// command (its attempts are the script's to check).
func (r Rule) matches(stage Stage, addrs []string) bool {
	if r.stage != stage {
		return false
	}
	if len(r.addrs) == 0 {
		return true
	}
	for _, want := range r.addrs {
		for _, a := range addrs {
			if strings.EqualFold(want, a) {
				return true
			}
		}
	}
	return false
}

// entry is r as the script holds it.
func (r Rule) entry() scripttest.Entry[Rule] {
	return scripttest.Entry[Rule]{
		Rule: r, Limits: r.lim, Delay: r.delay, Key: r.key,
		DelayOnly: r.reply == nil && !r.drop && r.decide == nil,
	}
}

// action is what the script decided for one command.
type action struct {
	delay time.Duration
	reply *smtpserver.Reply
	drop  bool
	err   error // FailMessages' error
}

func (a action) decided() bool { return a.reply != nil || a.drop || a.err != nil }

// result is the error a hook returns for a decided action on a connection
// the test server did not accept (so cannot drop).
func (a action) result() error {
	if a.reply != nil {
		return *a.reply
	}
	return errDropped
}

// Script adds rules to the server's script. For each command, the rules
// that apply are taken in the order they were added: every rule with only
// a Delay waits its delay, and the first rule with a Reply or Drop waits
// its own and decides; without one the server replies as it would (and
// the hooks set with [Configure] are called). Rules may be added while the
// server runs; they apply to the commands that follow.
//
// Script panics on a rule that cannot apply (no stage, a reply code that
// is not 4xx or 5xx, neither Reply, Drop nor Delay): a mistake in the test.
func (s *Server) Script(rules ...Rule) {
	for _, r := range rules {
		if msg := r.check(); msg != "" {
			panic("smtptest: Script(" + r.String() + "): " + msg)
		}
	}
	es := make([]scripttest.Entry[Rule], len(rules))
	for i, r := range rules {
		es[i] = r.entry()
	}
	s.script.Add(es...)
}

// ClearScript removes every rule, those of FailRecipient, FailMessages and
// Delay included.
func (s *Server) ClearScript() { s.script.Clear() }

// setKeyed replaces the rule with r's key (or removes it when remove is
// set), keeping its place in the script.
func (s *Server) setKeyed(r Rule, remove bool) { s.script.Set(r.entry(), remove) }

// match decides a command at stage for attempt n with the command's
// addresses; m is the message at StageData. FailMessages' function is
// called without the server's lock held.
func (s *Server) match(stage Stage, n int, addrs []string, m *Message) action {
	var failed error // FailMessages' error, of the rule that decided
	delay, r, ok := s.script.Match(n,
		func(r Rule) bool { return r.matches(stage, addrs) },
		func(r Rule) bool {
			if r.decide == nil {
				return true
			}
			if m == nil {
				return false
			}
			failed = r.decide(*m)
			return failed != nil
		})
	act := action{delay: delay}
	switch {
	case !ok:
	case r.decide != nil:
		act.err = failed
	default:
		act.reply, act.drop = r.reply, r.drop
	}
	return act
}

// FailRecipient makes RCPT for addr (case-insensitive) fail with r; a zero
// Reply removes the failure. It is the rule
// At(StageRcpt, addr).Reply(r.Code, r.Enhanced, r.Text), replaced by the
// next FailRecipient for the same address.
func (s *Server) FailRecipient(addr string, r smtpserver.Reply) {
	rl := At(StageRcpt, addr).Reply(r.Code, r.Enhanced, r.Text)
	rl.key = "rcpt\x00" + strings.ToLower(addr)
	if r.Code != 0 {
		if msg := rl.check(); msg != "" {
			panic("smtptest: FailRecipient: " + msg)
		}
	}
	s.setKeyed(rl, r.Code == 0)
}

// FailMessages decides, for each message received, whether to refuse it
// after the data: a non-nil error is the reply (a smtpserver.Reply gives it
// exactly; otherwise a permanent error gives 554 and any other 451; in LMTP
// mode a smtpserver.RecipientErrors refuses recipients one by one). Nil f
// accepts everything again. It is a rule at StageData, replaced by the next
// call; f is called from the session's goroutine, without the server's
// lock.
func (s *Server) FailMessages(f func(Message) error) {
	rl := Rule{stage: StageData, decide: f, key: "messages"}
	s.setKeyed(rl, f == nil)
}

// Delay delays the replies of a stage by d (0 removes the delay). It is the
// rule At(stage).Delay(d), replaced by the next Delay for the stage.
func (s *Server) Delay(stage Stage, d time.Duration) {
	rl := At(stage).Delay(d)
	rl.key = "delay\x00" + stage.String()
	if d > 0 {
		if msg := rl.check(); msg != "" {
			panic("smtptest: Delay: " + msg)
		}
	}
	s.setKeyed(rl, d <= 0)
}
