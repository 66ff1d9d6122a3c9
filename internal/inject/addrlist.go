package inject

import "errors"

// ErrSyntax is what ParseAddressList returns for a line it cannot parse.
var ErrSyntax = errors.New("inject: unable to parse address list")

// ParseAddressList reads one line of an RFC 822 address list as qmail's
// dot-forward (parseline) reads a .forward line, with qmail-inject's
// tokenizer: quoted strings, comments in parentheses, domain literals,
// backslash quoting, "phrase <route-addr>" keeping only the address in
// the angle brackets. The ':' and ';' of group syntax are ignored, so a
// group's name reads as one more address.
//
// It calls fn for each address, from right to left, with its text
// (unquoted, comments dropped, literals in brackets; "" for "<>") and
// whether an '@' token was in it (one inside a quoted string does not
// count); fn's error stops the parse and is returned. A line that does not
// lex, or a '>' with no '<' before it, gives ErrSyntax, but only after fn
// has seen the addresses to the right of a stray '>', as with dot-forward.
func ParseAddressList(line []byte, fn func(addr string, hasAt bool) error) error {
	toks, ok := tokenize(line)
	if !ok {
		return ErrSyntax
	}
	var addr []token // reversed, as collected
	got := func() error {
		hasAt := false
		for _, t := range addr {
			if t.typ == tAt {
				hasAt = true
			}
		}
		reverse(addr)
		s := unquote(addr)
		addr = addr[:0]
		return fn(s, hasAt)
	}
	wordOK := true
	for t := len(toks) - 1; t >= 0; t-- {
		switch toks[t].typ {
		case tSemi, tColon:
			// group syntax: ignored
		case tRight:
			if len(addr) > 0 {
				if err := got(); err != nil {
					return err
				}
			}
			for t > 0 && toks[t-1].typ != tLeft {
				t--
				addr = append(addr, toks[t])
			}
			if err := got(); err != nil {
				return err
			}
			if t <= 0 {
				return ErrSyntax
			}
			t-- // the '<'
			for t > 0 {
				switch toks[t-1].typ {
				case tComment, tAtom, tQuote, tAt, tDot:
					t-- // the phrase before '<'
					continue
				}
				break
			}
			wordOK = false
		case tAtom, tQuote, tLiteral:
			if !wordOK && len(addr) > 0 {
				if err := got(); err != nil {
					return err
				}
			}
			wordOK = false
			addr = append(addr, toks[t])
		case tComment:
			// lexically a space: wordOK is unchanged
		case tComma:
			if len(addr) > 0 {
				if err := got(); err != nil {
					return err
				}
			}
			wordOK = true
		default: // '@', '.', '<'
			wordOK = true
			addr = append(addr, toks[t])
		}
	}
	if len(addr) > 0 {
		return got()
	}
	return nil
}
