package smtpserver

import (
	"crypto/tls"
	"strconv"
	"strings"
	"time"
)

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// date822 formats t as qmail's date822fmt: "21 Nov 2026 22:27:55 -0000",
// always UTC, the day without padding and no weekday.
func date822(t time.Time) string {
	t = t.UTC()
	var b strings.Builder
	b.WriteString(strconv.Itoa(t.Day()))
	b.WriteByte(' ')
	b.WriteString(months[t.Month()-1])
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(t.Year()))
	b.WriteByte(' ')
	two := func(n int) {
		b.WriteByte(byte('0' + n/10))
		b.WriteByte(byte('0' + n%10))
	}
	two(t.Hour())
	b.WriteByte(':')
	two(t.Minute())
	b.WriteByte(':')
	two(t.Second())
	b.WriteString(" -0000")
	return b.String()
}

// safeput writes s with every byte outside qmail's safe set replaced by "?"
// (received.c).
func safeput(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".@%+/=:-[]", c) >= 0:
		default:
			c = '?'
		}
		b.WriteByte(c)
	}
}

// receivedBy is the host the Received line names after "by": the
// connection's TCPLOCALHOST (tcpserver -l) when set; else, in modern mode,
// the session's Hostname when one is configured; else TCPLOCALIP, else
// "unknown", as qmail-smtpd (received.c) does, in compat mode always.
func (s *session) receivedBy() string {
	env := s.info.Env
	if v, ok := env["TCPLOCALHOST"]; ok {
		return v
	}
	if !s.compat && s.set.Hostname != "" {
		return s.set.Hostname
	}
	if v, ok := env["TCPLOCALIP"]; ok {
		return v
	}
	return "unknown"
}

// receivedInfo is what the Received line records about a session.
type receivedInfo struct {
	remoteHost, remoteIP, remoteInfo, local string
	hasInfo                                 bool
	helo                                    *string // nil when no HELO/EHLO, or when it equals remoteHost
	protocol                                string
	tlsComment                              string
}

// received returns the Received line qmail-smtpd writes (received.c), with
// its final LF.
func received(ri receivedInfo, now time.Time) string {
	var b strings.Builder
	b.WriteString("Received: from ")
	safeput(&b, ri.remoteHost)
	if ri.helo != nil {
		b.WriteString(" (HELO ")
		safeput(&b, *ri.helo)
		b.WriteString(")")
	}
	b.WriteString(" (")
	if ri.hasInfo {
		safeput(&b, ri.remoteInfo)
		b.WriteString("@")
	}
	safeput(&b, ri.remoteIP)
	b.WriteString(")\n  by ")
	safeput(&b, ri.local)
	b.WriteString(" with ")
	b.WriteString(ri.protocol)
	if ri.tlsComment != "" {
		b.WriteString(" (")
		b.WriteString(ri.tlsComment)
		b.WriteString(")")
	}
	b.WriteString("; ")
	b.WriteString(date822(now))
	b.WriteString("\n")
	return b.String()
}

// protocolWord is the "with" word: qmail's "SMTP" for plain sessions (also
// after EHLO), RFC 3848's words with TLS or AUTH, RFC 6531's with SMTPUTF8.
func protocolWord(lmtp, tlsOn, auth, utf8 bool) string {
	base := "SMTP"
	if lmtp {
		base = "LMTP"
	} else if utf8 {
		base = "UTF8SMTP"
	} else if tlsOn || auth {
		base = "ESMTP"
	}
	if tlsOn {
		base += "S"
	}
	if auth {
		base += "A"
	}
	return base
}

// tlsComment is "(TLS1.3 TLS_AES_128_GCM_SHA256)"'s content.
func tlsComment(cs *tls.ConnectionState) string {
	if cs == nil {
		return ""
	}
	v := strings.ReplaceAll(tls.VersionName(cs.Version), " ", "")
	return v + " " + tls.CipherSuiteName(cs.CipherSuite)
}
