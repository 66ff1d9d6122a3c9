package smtpserver

import (
	"strconv"
	"strings"
)

// Reply is one SMTP reply. A handler (a policy hook, an [Enqueuer]) may
// return a Reply, or an error wrapping one, to choose the reply exactly.
//
// Enhanced is the RFC 3463 code ("5.7.1") written after Code when the server
// uses enhanced status codes; when empty, the server takes it from a qmail
// style "(#5.7.1)" in Text, else from the reply class (2.0.0, 4.0.0, 5.0.0).
// Text may hold several lines separated by "\n".
type Reply struct {
	Code     int
	Enhanced string
	Text     string
}

// Error makes a Reply usable as an error.
func (r Reply) Error() string {
	return "smtpserver: reply " + strconv.Itoa(r.Code) + " " + r.Text
}

// Permanent reports whether the reply is a 5xx.
func (r Reply) Permanent() bool { return r.Code >= 500 }

// enhanced returns the RFC 3463 code to write with r, or "" when none
// applies (354, 334, 220 greetings are written without one by the caller).
func (r Reply) enhanced() string {
	if r.Enhanced != "" {
		return r.Enhanced
	}
	if i := strings.LastIndex(r.Text, "(#"); i >= 0 {
		if j := strings.IndexByte(r.Text[i:], ')'); j > 2 {
			if c := r.Text[i+2 : i+j]; validEnhanced(c) {
				return c
			}
		}
	}
	switch r.Code / 100 {
	case 2:
		return "2.0.0"
	case 4:
		return "4.0.0"
	case 5:
		return "5.0.0"
	}
	return ""
}

func validEnhanced(c string) bool {
	parts := strings.Split(c, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// format renders r as reply lines, each ending in CRLF.
func (r Reply) format(withEnhanced bool) []byte {
	code := strconv.Itoa(r.Code)
	enh := ""
	if withEnhanced && r.Code != 354 && r.Code != 334 {
		if e := r.enhanced(); e != "" {
			enh = e + " "
		}
	}
	lines := strings.Split(r.Text, "\n")
	var b []byte
	for i, l := range lines {
		b = append(b, code...)
		if i < len(lines)-1 {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		b = append(b, enh...)
		for i := 0; i < len(l); i++ {
			// Texts may come from an Enqueuer or a program: no control
			// byte (a CR above all) may reach the client.
			if c := l[i]; c < 32 || c == 127 {
				b = append(b, '?')
			} else {
				b = append(b, c)
			}
		}
		b = append(b, '\r', '\n')
	}
	return b
}

// RecipientErrors is what an [Enqueuer] returns (wrapped or not) to report a
// result per recipient, in the envelope's order, nil meaning accepted. An
// LMTP server ([Server.LMTP]) writes one reply per recipient from it; an
// SMTP server can only give one reply, so it replies with the first failure
// (the enqueuer must not return it when some recipients were accepted:
// bouncing those is then the enqueuer's job, as it is the queue's).
type RecipientErrors []error

func (e RecipientErrors) Error() string {
	for _, err := range e {
		if err != nil {
			return "smtpserver: recipient failed: " + err.Error()
		}
	}
	return "smtpserver: no recipient failed"
}

// Unwrap returns the failures, so errors.As finds a Reply among them.
func (e RecipientErrors) Unwrap() []error {
	var out []error
	for _, err := range e {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// qmail's reply texts (qmail-smtpd.c), with RFC 3463 enhanced codes for the
// modern mode. Modern-only replies carry their code in Enhanced.
var (
	replyMailOK       = Reply{250, "2.1.0", "ok"}
	replyRcptOK       = Reply{250, "2.1.5", "ok"}
	replyFlushed      = Reply{250, "2.0.0", "flushed"}
	replyOK           = Reply{250, "2.0.0", "ok"}
	replyVrfy         = Reply{252, "2.0.0", "send some mail, i'll try my best"}
	replyHelp         = Reply{214, "2.0.0", "qmailkit home page: https://github.com/qmailkit/qmailkit"}
	replyGoAhead      = Reply{354, "", "go ahead"}
	replyUnimpl       = Reply{502, "", "unimplemented (#5.5.1)"}
	replyMailFirst    = Reply{503, "", "MAIL first (#5.5.1)"}
	replyRcptFirst    = Reply{503, "", "RCPT first (#5.5.1)"}
	replySyntax       = Reply{555, "", "syntax error (#5.5.4)"}
	replyBadMailFrom  = Reply{553, "", "sorry, your envelope sender is in my badmailfrom list (#5.7.1)"}
	replyNoGateway    = Reply{553, "", "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"}
	replyTooBig       = Reply{552, "", "sorry, that message size exceeds my databytes limit (#5.3.4)"}
	replyHops         = Reply{554, "", "too many hops, this message is looping (#5.4.6)"}
	replyTimeout      = Reply{451, "", "timeout (#4.4.2)"}
	replyControls     = Reply{421, "", "unable to read controls (#4.3.0)"}
	replyQqt          = Reply{451, "", "qqt failure (#4.3.0)"}
	replyQqTemp       = Reply{451, "", "qq temporary problem (#4.3.0)"}
	replyQqPerm       = Reply{554, "", "mail server permanently rejected message (#5.3.0)"}
	replyQqIncomplete = Reply{451, "", "qq read error (#4.3.0)"}

	// bare LF: qmail's exact text, and the modern one.
	replyBareLFCompat = Reply{451, "", "See https://cr.yp.to/docs/smtplf.html."}
	replyBareLF       = Reply{451, "4.5.0", "bare LF not allowed, see https://cr.yp.to/docs/smtplf.html"}

	replyBareCR       = Reply{554, "5.6.0", "bare CR not allowed"}
	replyBadParam     = Reply{555, "5.5.4", "unsupported parameter"}
	replyArgSyntax    = Reply{501, "5.5.4", "syntax error"}
	replyAddrTooLong  = Reply{501, "5.1.3", "address too long"}
	replySizeExceeded = Reply{552, "5.3.4", "message size exceeds fixed maximum message size"}
	replyNeedUTF8     = Reply{553, "5.6.7", "non-ASCII address requires SMTPUTF8"}
	replyBadUTF8      = Reply{553, "5.6.7", "invalid UTF-8 in address"}
	replyTooManyRcpt  = Reply{452, "4.5.3", "too many recipients"}
	replyLineTooLong  = Reply{500, "5.5.2", "line too long"}
	replySync         = Reply{554, "5.5.0", "SMTP protocol synchronization error"}
	replyTooManyErrs  = Reply{421, "4.7.0", "too many errors, closing connection"}
	replyTooManyConns = Reply{421, "4.7.0", "too many connections from your address"}
	replyTooManyTotal = Reply{421, "4.7.0", "too many connections, try again later"}
	replyTooSlow      = Reply{451, "4.4.2", "data transfer too slow, closing connection"}
	replyCtlSender    = Reply{501, "5.1.7", "control characters are not allowed in the sender address"}
	replyCtlRcpt      = Reply{501, "5.1.3", "control characters are not allowed in the recipient address"}
	replyShutdown     = Reply{421, "4.3.2", "server shutting down"}
	replyNoSender     = Reply{503, "5.5.1", "need MAIL before BDAT"}
	replyBdatSyntax   = Reply{501, "5.5.4", "syntax error in BDAT"}
	replyBdatMixed    = Reply{503, "5.5.1", "DATA and BDAT may not be mixed"}
	replyBdatFailed   = Reply{503, "5.5.1", "previous BDAT failed, send RSET"}

	replyTLSReady    = Reply{220, "2.0.0", "ready to start TLS"}
	replyTLSAlready  = Reply{503, "5.5.1", "already in TLS"}
	replyTLSArg      = Reply{501, "5.5.4", "syntax error"}
	replyEncrypt     = Reply{538, "5.7.11", "encryption required for requested authentication mechanism"}
	replyAuthTwice   = Reply{503, "5.5.1", "already authenticated"}
	replyAuthInTx    = Reply{503, "5.5.1", "AUTH not allowed during a mail transaction"}
	replyAuthMech    = Reply{504, "5.5.4", "unrecognized authentication type"}
	replyAuthCancel  = Reply{501, "5.0.0", "authentication cancelled"}
	replyAuthDecode  = Reply{501, "5.5.2", "cannot decode response"}
	replyAuthOK      = Reply{235, "2.7.0", "authentication successful"}
	replyAuthBad     = Reply{535, "5.7.8", "authentication credentials invalid"}
	replyAuthTemp    = Reply{454, "4.7.0", "temporary authentication failure"}
	replyAuthTooMany = Reply{421, "4.7.0", "too many authentication failures"}
	replyAuthLimited = Reply{454, "4.7.0", "too many failed authentications, try again later"}
)
