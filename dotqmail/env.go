package dotqmail

import (
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/internal/quote"
)

// Target is one local recipient as qmail-lspawn hands it to qmail-local:
// the operands "user homedir local dash ext domain sender defaultdelivery".
type Target struct {
	User string // the account name ($USER)
	Home string // the home directory, an absolute path ($HOME)
	// Local is the recipient's local part exactly as queued, original
	// case, including any virtual-domain prefix ($LOCAL).
	Local string
	// Dash and Ext choose the .qmail file: home/.qmail + Dash + Ext. Dash
	// is "" (the user's own address) or "-".
	Dash, Ext string
	Domain    string // the recipient's domain ($HOST)
	// Sender is the envelope sender of this delivery, after VERP
	// expansion: "" for a bounce, "#@[]" for a double bounce.
	Sender string
	// DefaultDelivery is used, read as .qmail lines, when the user's own
	// address has no .qmail file or an empty one: qmail-start's argument,
	// commonly "./Maildir/" or "./Mailbox". It is taken literally, as
	// qmail-local takes it: an empty one is a blank first line, which
	// defers the message ([Local] fills in "./Maildir/").
	DefaultDelivery string
}

// DTLine returns the Delivered-To line of a recipient as qmail-local
// writes it: "Delivered-To: local@domain\n", any newline in the address
// written as '_'. A message already carrying it in its header is looping.
func DTLine(local, domain string) string {
	return "Delivered-To: " + strings.ReplaceAll(local+"@"+domain, "\n", "_") + "\n"
}

// RPLine returns the Return-Path line for a sender as qmail-local writes
// it: "Return-Path: <" + the sender quoted as qmail's quote2 + ">\n",
// newlines written as '_'; "Return-Path: <>\n" for a bounce.
func RPLine(sender string) string {
	return strings.ReplaceAll("Return-Path: <"+Quote2(sender)+">", "\n", "_") + "\n"
}

// UFLine returns the mbox "From " line for a sender and start time: the
// sender with spaces, tabs and newlines written as '-' (MAILER-DAEMON for
// the empty sender), then the time in UTC as "Thu Jan 01 00:00:00 1970",
// the day zero-padded as qmail-local writes it.
func UFLine(sender string, start time.Time) string {
	x := sender
	if x == "" {
		x = "MAILER-DAEMON"
	}
	x = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' {
			return '-'
		}
		return r
	}, x)
	return "From " + x + " " + start.UTC().Format("Mon Jan 02 15:04:05 2006") + "\n"
}

// Quote2 quotes an address as qmail's quote2 does: the local part before
// the last '@' is put in double quotes, with '\' before CR, LF, '"' and
// '\', unless it is a non-empty run of atom characters and dots that
// neither starts nor ends with a dot nor holds "..". "" stays "".
func Quote2(addr string) string { return quote.Addr(addr) }

// afterDash returns what follows the n-th '-' of s, or "" when s has fewer.
func afterDash(s string, n int) string {
	for ; n > 0; n-- {
		i := strings.IndexByte(s, '-')
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	return s
}

// hostPrefix returns HOST cut before its n-th '.' from the right; when
// there are fewer dots it stops shrinking, as HOST2 to HOST4 do in
// qmail-command(8).
func hostPrefix(host string, n int) string {
	for ; n > 0; n-- {
		i := strings.LastIndexByte(host, '.')
		if i < 0 {
			break
		}
		host = host[:i]
	}
	return host
}

// lines holds what one delivery computes once: the prepended lines and the
// program environment.
type lines struct {
	dt, rp, uf string
}

func newLines(t Target, start time.Time) lines {
	return lines{dt: DTLine(t.Local, t.Domain), rp: RPLine(t.Sender), uf: UFLine(t.Sender, start)}
}

// Env returns the variables qmail-local gives programs for a target, as
// "NAME=value" strings in a fixed order (see qmail-command(8)). def is
// $DEFAULT (omitted unless hasDef); newSender is $NEWSENDER; start is the
// time in UFLINE. Values are raw: a remote sender chooses SENDER, so
// programs must quote them.
func Env(t Target, def string, hasDef bool, newSender string, start time.Time) []string {
	l := newLines(t, start)
	return envOf(t, l, def, hasDef, newSender)
}

func envOf(t Target, l lines, def string, hasDef bool, newSender string) []string {
	env := []string{
		"USER=" + t.User,
		"HOME=" + t.Home,
		"LOCAL=" + t.Local,
		"HOST=" + t.Domain,
		"RECIPIENT=" + t.Local + "@" + t.Domain,
		"DTLINE=" + l.dt,
		"SENDER=" + t.Sender,
		"RPLINE=" + l.rp,
		"UFLINE=" + l.uf,
		"EXT=" + t.Ext,
		"EXT2=" + afterDash(t.Ext, 1),
		"EXT3=" + afterDash(t.Ext, 2),
		"EXT4=" + afterDash(t.Ext, 3),
		"HOST2=" + hostPrefix(t.Domain, 1),
		"HOST3=" + hostPrefix(t.Domain, 2),
		"HOST4=" + hostPrefix(t.Domain, 3),
	}
	if hasDef {
		env = append(env, "DEFAULT="+def)
	}
	return append(env, "NEWSENDER="+newSender)
}

// DefaultPath is the PATH of programs when the environment they start
// from has none.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// AllowedEnv returns what of env may reach the programs of users' .qmail
// files and the qmail-local processes that run them: PATH (DefaultPath
// when env has none), TZ, LANG, the LC_ variables, and the variables whose
// names begin with QMAIL (QMAILHOME, QMAILQUEUE, QMAILINJECT...), which
// configure qmail's own programs (a forward run from a .qmail line
// injects through $QMAILQUEUE). Everything else, whatever root or the mail
// server's account keeps in its environment (credentials, tokens, its own
// settings), is dropped. The order of env is kept.
func AllowedEnv(env []string) []string {
	out := make([]string, 0, 8)
	path := false
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch {
		case name == "PATH":
			path = true
		case name == "TZ", name == "LANG", strings.HasPrefix(name, "LC_"), strings.HasPrefix(name, "QMAIL"):
		default:
			continue
		}
		out = append(out, kv)
	}
	if !path {
		out = append(out, "PATH="+DefaultPath)
	}
	return out
}

// programEnv returns the environment of a program line: what
// [AllowedEnv] keeps of base, then qmail-local's variables add (none of
// which AllowedEnv keeps, so that an inherited $DEFAULT is absent when no
// default applies).
func programEnv(base, add []string) []string {
	return append(AllowedEnv(base), add...)
}
