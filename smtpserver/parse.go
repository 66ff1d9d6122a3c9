package smtpserver

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// splitCommand splits a command line (CRLF already removed, cut at the first
// NUL) into its verb, upper-cased, and its argument, as qmail's commands.c
// does: the verb ends at the first space, the argument starts after the
// spaces that follow it (spaces only, not tabs).
func splitCommand(line string) (verb, arg string) {
	i := strings.IndexByte(line, ' ')
	if i < 0 {
		return strings.ToUpper(line), ""
	}
	verb = strings.ToUpper(line[:i])
	arg = strings.TrimLeft(line[i:], " ")
	return verb, arg
}

// parseAddr is qmail-smtpd's addrparse without the localiphost step and the
// length check: it finds the address in a MAIL or RCPT argument and returns
// it with whatever follows its terminator (the ESMTP parameters).
func parseAddr(arg string) (addr, rest string) {
	term := byte('>')
	if i := strings.IndexByte(arg, '<'); i >= 0 {
		arg = arg[i+1:]
	} else {
		// "partner should go read rfc 821"
		term = ' '
		if i := strings.IndexByte(arg, ':'); i >= 0 {
			arg = arg[i+1:]
		} else {
			arg = ""
		}
		arg = strings.TrimLeft(arg, " ")
	}
	// A source route, @a,@b:user@host, is dropped up to its first colon.
	if strings.HasPrefix(arg, "@") {
		if i := strings.IndexByte(arg, ':'); i >= 0 {
			arg = arg[i+1:]
		} else {
			arg = ""
		}
	}
	var b strings.Builder
	esc, quoted := false, false
	i := 0
	for ; i < len(arg); i++ {
		c := arg[i]
		if esc {
			b.WriteByte(c)
			esc = false
			continue
		}
		if !quoted && c == term {
			i++
			break
		}
		switch c {
		case '\\':
			esc = true
		case '"':
			quoted = !quoted
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), arg[min(i, len(arg)):]
}

// scanBracketIP parses "[d.d.d.d]" exactly as qmail's ip_scanbracket: four
// runs of decimal digits, each kept modulo 256 (qmail stores them in an
// unsigned char), and nothing after the "]".
func scanBracketIP(s string) (netip.Addr, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return netip.Addr{}, false
	}
	s = s[1 : len(s)-1]
	var ip [4]byte
	for k := 0; k < 4; k++ {
		j := 0
		var u uint64
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			u = u*10 + uint64(s[j]-'0')
			j++
		}
		if j == 0 {
			return netip.Addr{}, false
		}
		ip[k] = byte(u)
		s = s[j:]
		if k < 3 {
			if s == "" || s[0] != '.' {
				return netip.Addr{}, false
			}
			s = s[1:]
		}
	}
	if s != "" {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

// domainOf returns the text after the last "@" of addr, and whether there
// was one.
func domainOf(addr string) (string, bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", false
	}
	return addr[i+1:], true
}

// mailParams are the ESMTP parameters of MAIL FROM the server understands.
type mailParams struct {
	size     int64
	hasSize  bool
	body     string
	smtputf8 bool
	// DSN (RFC 3461): ret is "FULL" or "HDRS", envid decoded; "" when
	// not given.
	ret, envid string
	hasEnvID   bool
}

// dsn returns the MAIL parameters of DSN as DSNEnqueuer takes them, nil
// when none was given.
func (p *mailParams) dsn() map[string]string {
	if p.ret == "" && !p.hasEnvID {
		return nil
	}
	m := make(map[string]string, 2)
	if p.ret != "" {
		m["RET"] = p.ret
	}
	if p.hasEnvID {
		m["ENVID"] = p.envid
	}
	return m
}

// parseMailParams checks MAIL's parameters (RFC 5321 section 4.1.2, RFC
// 1870, RFC 6152, RFC 6531, RFC 4954 section 5, RFC 3461 sections 4.3
// and 4.4). utf8OK says whether SMTPUTF8 is offered, dsnOK whether DSN is.
func parseMailParams(rest string, utf8OK, authOK, dsnOK bool) (mailParams, *Reply) {
	var p mailParams
	for _, f := range strings.Fields(rest) {
		k, v, hasV := strings.Cut(f, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			n, err := strconv.ParseInt(v, 10, 64)
			if !hasV || err != nil || n < 0 {
				return p, &replyArgSyntax
			}
			p.size, p.hasSize = n, true
		case "BODY":
			switch strings.ToUpper(v) {
			case "7BIT", "8BITMIME":
				p.body = strings.ToUpper(v)
			default:
				return p, &replyBadParam
			}
		case "SMTPUTF8":
			if hasV || !utf8OK {
				return p, &replyBadParam
			}
			p.smtputf8 = true
		case "AUTH":
			if !hasV || !authOK {
				return p, &replyBadParam
			}
		case "RET":
			if !dsnOK {
				return p, &replyBadParam
			}
			v = strings.ToUpper(v)
			if p.ret != "" || v != "FULL" && v != "HDRS" {
				return p, &replyArgSyntax
			}
			p.ret = v
		case "ENVID":
			if !dsnOK {
				return p, &replyBadParam
			}
			if p.hasEnvID || !hasV || len(v) > maxEnvID {
				return p, &replyArgSyntax
			}
			// The identifier is printable US-ASCII (RFC 3461 section 4.4).
			dec, ok := decodeXtext(v)
			if !ok || dec == "" || hasNonASCII(dec) {
				return p, &replyArgSyntax
			}
			p.envid, p.hasEnvID = dec, true
		default:
			return p, &replyBadParam
		}
	}
	return p, nil
}

// checkModernAddr applies the size limits of RFC 5321 section 4.5.3.1 and
// RFC 6531's UTF-8 rule to a parsed address.
func checkModernAddr(addr string, smtputf8 bool) *Reply {
	ascii := true
	for i := 0; i < len(addr); i++ {
		if addr[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		if !utf8.ValidString(addr) {
			return &replyBadUTF8
		}
		if !smtputf8 {
			return &replyNeedUTF8
		}
	}
	if len(addr)+2 > 256 {
		return &replyAddrTooLong
	}
	local, domain := addr, ""
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, domain = addr[:i], addr[i+1:]
	}
	if len(local) > 64 || len(domain) > 255 {
		return &replyAddrTooLong
	}
	return nil
}

// hasPrefixFold reports whether s starts with prefix, ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
