package inject

// Address rewriting (qmail-inject.c rwgeneric and its steps). An address
// arrives as its tokens in reverse order, so index 0 is its last token.

// rewriter holds the token forms of ".defaultdomain", "@defaulthost" and
// ".plusdomain".
type rewriter struct {
	defaultDomain, defaultHost, plusDomain []token
}

// prepend inserts the tokens of frag, reversed, in front of addr.
func prepend(addr, frag []token) []token {
	out := make([]token, 0, len(addr)+len(frag))
	for i := len(frag) - 1; i >= 0; i-- {
		out = append(out, frag[i])
	}
	return append(out, addr...)
}

// rewrite applies qmail-inject's rules to one reversed address.
func (rw *rewriter) rewrite(addr []token) []token {
	if len(addr) == 0 {
		return addr // <>
	}
	if len(addr) >= 2 && addr[1].typ == tAt && addr[0].typ == tLiteral && addr[0].s == "" {
		return addr // <foo@[]>
	}
	// rwroute: a source route "@a,@b:" goes.
	if addr[len(addr)-1].typ == tAt {
		for len(addr) > 0 {
			last := addr[len(addr)-1]
			addr = addr[:len(addr)-1]
			if last.typ == tColon {
				break
			}
		}
		if len(addr) == 0 {
			return addr
		}
	}
	// rwextradot, rwextraat: one trailing "." then one trailing "@".
	if addr[0].typ == tDot {
		addr = addr[1:]
		if len(addr) == 0 {
			return addr
		}
	}
	if addr[0].typ == tAt {
		addr = addr[1:]
		if len(addr) == 0 {
			return addr
		}
	}
	// rwnoat
	hasAt := false
	for _, t := range addr {
		if t.typ == tAt {
			hasAt = true
			break
		}
	}
	if !hasAt {
		addr = prepend(addr, rw.defaultHost)
	}
	// rwplus: "host+" becomes "host.plusdomain".
	if addr[0].typ == tAtom && addr[0].s != "" && addr[0].s[len(addr[0].s)-1] == '+' {
		addr = append([]token(nil), addr...)
		addr[0].s = addr[0].s[:len(addr[0].s)-1]
		addr = prepend(addr, rw.plusDomain)
	}
	// rwnodot: a domain without a dot or literal gets ".defaultdomain".
	for _, t := range addr {
		if t.typ == tDot {
			return addr
		}
		if t.typ == tAt {
			break
		}
	}
	for _, t := range addr {
		if t.typ == tLiteral {
			return addr
		}
		if t.typ == tAt {
			break
		}
	}
	return prepend(addr, rw.defaultDomain)
}
