package inject

// RFC 822 tokens as qmail's token822.c sees them. Every rule here mirrors
// that file, quirks included: an atom ends only at whitespace or one of
// ( [ " < > ; : @ , . so "joe)" is one atom; a backslash escapes the next
// byte anywhere; nested comment parentheses are dropped.

type tokType uint8

const (
	tAtom tokType = iota + 1
	tQuote
	tLiteral
	tComment
	tComma
	tAt
	tDot
	tLeft
	tRight
	tSemi
	tColon
)

type token struct {
	typ tokType
	s   string // the text of an atom, quoted string, literal or comment, unescaped
}

// atomOK reports whether c may continue an atom (token822.c atomok).
func atomOK(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '(', '[', '"', '<', '>', ';', ':', '@', ',', '.':
		return false
	}
	return true
}

// special maps the one-byte tokens.
func special(c byte) tokType {
	switch c {
	case '.':
		return tDot
	case ',':
		return tComma
	case '@':
		return tAt
	case '<':
		return tLeft
	case '>':
		return tRight
	case ':':
		return tColon
	case ';':
		return tSemi
	}
	return 0
}

// tokenize splits s into tokens (token822_parse); ok is false on a lexical
// error: an unterminated quoted string, comment or literal, a trailing
// backslash inside one, or a ")" or "]" where a token starts.
func tokenize(s []byte) (toks []token, ok bool) {
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if t := special(c); t != 0 {
			toks = append(toks, token{typ: t})
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case ')', ']':
			return nil, false
		case '(', '"', '[':
			typ, open, closer := tComment, byte('('), byte(')')
			if c == '"' {
				typ, open, closer = tQuote, 0, '"'
			} else if c == '[' {
				typ, open, closer = tLiteral, 0, ']'
			}
			start := len(buf)
			for level := 1; level > 0; {
				i++
				if i >= len(s) {
					return nil, false
				}
				switch ch := s[i]; {
				case open != 0 && ch == open:
					level++
				case ch == closer:
					level--
				case ch == '\\':
					i++
					if i >= len(s) {
						return nil, false
					}
					buf = append(buf, s[i])
				default:
					buf = append(buf, ch)
				}
			}
			toks = append(toks, token{typ: typ, s: string(buf[start:])})
		default:
			start := len(buf)
			for {
				if s[i] == '\\' {
					i++
					if i >= len(s) {
						break
					}
				}
				buf = append(buf, s[i])
				i++
				if i >= len(s) || !atomOK(s[i]) {
					break
				}
			}
			i--
			t := token{typ: tAtom, s: string(buf[start:])}
			// atomcheck: an atom that cannot be printed bare becomes a
			// quoted string.
			for j := 0; j < len(t.s); j++ {
				if ch := t.s[j]; ch < 32 || ch > 126 || ch == ')' || ch == ']' || ch == '\\' {
					t.typ = tQuote
					break
				}
			}
			toks = append(toks, t)
		}
	}
	return toks, true
}

func isWord(t tokType) bool {
	return t == tAtom || t == tLiteral || t == tQuote || t == tComment
}

// needSpace is token822.c's needspace: whether a space goes between two
// adjacent tokens when printing.
func needSpace(t1, t2 tokType) bool {
	switch {
	case t1 == 0:
		return false
	case t1 == tColon, t1 == tComma, t2 == tLeft:
		return true
	}
	return isWord(t1) && isWord(t2)
}

// unparse prints tokens as a header field ending in "\n" (token822_unparse),
// folding after commas so that no line is longer than linelen-2 bytes when
// that can be helped; linelen 0 never folds.
func unparse(toks []token, linelen int) []byte {
	b := make([]byte, 0, 64)
	lineb, linee := 0, -1
	// nsuw is the NSUW macro: a tentative line break after a comma (or at
	// the end), dropping the previous break when the line up to here fits.
	nsuw := func() {
		s := len(b)
		b = append(b, '\n', ' ')
		if linee >= 0 && (linelen == 0 || s-lineb <= linelen) {
			copy(b[linee:], b[linee+2:])
			b = b[:len(b)-2]
			linee = s - 2
		} else {
			if linee >= 0 {
				lineb = linee + 1
			}
			linee = s
		}
	}
	var last tokType
	for _, t := range toks {
		if needSpace(last, t.typ) {
			b = append(b, ' ')
		}
		last = t.typ
		switch t.typ {
		case tComma:
			b = append(b, ',')
			nsuw()
		case tAt:
			b = append(b, '@')
		case tDot:
			b = append(b, '.')
		case tLeft:
			b = append(b, '<')
		case tRight:
			b = append(b, '>')
		case tSemi:
			b = append(b, ';')
		case tColon:
			b = append(b, ':')
		default:
			switch t.typ {
			case tQuote:
				b = append(b, '"')
			case tLiteral:
				b = append(b, '[')
			case tComment:
				b = append(b, '(')
			}
			for j := 0; j < len(t.s); j++ {
				switch ch := t.s[j]; ch {
				case '"', '[', ']', '(', ')', '\\', '\r', '\n':
					b = append(b, '\\', ch)
				default:
					b = append(b, ch)
				}
			}
			switch t.typ {
			case tQuote:
				b = append(b, '"')
			case tLiteral:
				b = append(b, ']')
			case tComment:
				b = append(b, ')')
			}
		}
	}
	nsuw()
	return b[:len(b)-1]
}

// unquote prints tokens as a bare address (token822_unquote): no quoting,
// literals in brackets, comments dropped.
func unquote(toks []token) string {
	b := make([]byte, 0, 32)
	for _, t := range toks {
		switch t.typ {
		case tComma:
			b = append(b, ',')
		case tAt:
			b = append(b, '@')
		case tDot:
			b = append(b, '.')
		case tLeft:
			b = append(b, '<')
		case tRight:
			b = append(b, '>')
		case tSemi:
			b = append(b, ';')
		case tColon:
			b = append(b, ':')
		case tLiteral:
			b = append(b, '[')
			b = append(b, t.s...)
			b = append(b, ']')
		case tAtom, tQuote:
			b = append(b, t.s...)
		}
	}
	return string(b)
}

func reverse(toks []token) {
	for i, j := 0, len(toks)-1; i < j; i, j = i+1, j-1 {
		toks[i], toks[j] = toks[j], toks[i]
	}
}

// addrList rewrites the address list of a tokenised field (token822_addrlist).
// toks[0:2] are the field name and its colon. The list is read right to
// left; each address is handed to fn with its tokens in reverse order, and
// fn returns its replacement (also reversed). ok is false on a syntax
// error, after fn has seen the addresses to the right of it.
func addrList(toks []token, fn func(addr []token) []token) (out []token, ok bool) {
	var addr []token
	out = make([]token, 0, len(toks)+8)
	got := func() {
		out = append(out, fn(addr)...)
		addr = addr[:0]
	}
	flush := func() {
		if len(addr) > 0 {
			got()
		}
	}
	flushComma := func() {
		if len(addr) > 0 {
			got()
			out = append(out, token{typ: tComma})
		}
	}
	const beginning = 2
	ingroup, wordok := false, true
	t := len(toks) - 1
	for t >= beginning {
		switch toks[t].typ {
		case tSemi:
			flushComma()
			if ingroup {
				return nil, false
			}
			ingroup, wordok = true, true
		case tColon:
			flush()
			if !ingroup {
				return nil, false
			}
			ingroup = false
			for t >= beginning && toks[t].typ != tComma {
				out = append(out, toks[t])
				t--
			}
			if t >= beginning {
				out = append(out, toks[t])
				t--
			}
			wordok = true
			continue
		case tRight:
			flushComma()
			out = append(out, toks[t])
			t--
			for t >= beginning && toks[t].typ != tLeft {
				addr = append(addr, toks[t])
				t--
			}
			got() // even when empty: <>
			if t < beginning {
				return nil, false
			}
			out = append(out, toks[t])
			t--
			for t >= beginning {
				switch toks[t].typ {
				case tComment, tAtom, tQuote, tAt, tDot:
					out = append(out, toks[t])
					t--
					continue
				}
				break
			}
			wordok = false
			continue
		case tAtom, tQuote, tLiteral:
			if !wordok {
				flushComma()
			}
			wordok = false
			addr = append(addr, toks[t])
			t--
			continue
		case tComment:
			// lexically a space: wordok is unchanged
		case tComma:
			flush()
			wordok = true
		default:
			wordok = true
			addr = append(addr, toks[t])
			t--
			continue
		}
		out = append(out, toks[t])
		t--
	}
	flush()
	for t++; t > 0; {
		t--
		out = append(out, toks[t])
	}
	reverse(out)
	return out, true
}
