package autorespond

import (
	"strings"
	"time"
)

// Check applies the rules to a message's header and envelope at now, and
// returns Replied when the message may be answered (the rate limit aside,
// which needs the log directory), else the first rule that refuses it.
// Compat mode applies autorespond 2.0.5's rules, in its order: NoSender,
// MailingList (a Mailing-List field), Loop (the first Delivered-To field
// contains "Autoresponder", any case), Bulk (the first Precedence field
// contains "junk", "bulk" or "list", any case). Modern mode applies, in
// order: Inactive, NoSender, FromSelf, MailingList (also any List-*
// field), Loop (every Delivered-To field, whose value must be
// "Autoresponder"), Bulk (every Precedence field),
// AutoSubmitted and, with Addressed, NotAddressed.
func (r *Responder) Check(h Header, env Envelope, now time.Time) Reason {
	if !r.Since.IsZero() && now.Before(r.Since) || !r.Until.IsZero() && now.After(r.Until) {
		return Inactive
	}
	if noSender(env.Sender, r.Compat) {
		return NoSender
	}
	if r.Compat {
		return compatRules(h)
	}
	own := r.addresses(env)
	for _, a := range own {
		if strings.EqualFold(a, env.Sender) {
			return FromSelf
		}
	}
	for _, f := range h {
		name := strings.ToLower(f.Name)
		if name == "mailing-list" || strings.HasPrefix(name, "list-") {
			return MailingList
		}
	}
	// autorespond's replies carry "Delivered-To: Autoresponder"; its
	// substring test would also take a mailbox named autoresponder@ for
	// one.
	for _, v := range h.Values("Delivered-To") {
		if strings.EqualFold(v, "autoresponder") {
			return Loop
		}
	}
	for _, v := range h.Values("Precedence") {
		if containsFold(v, "junk") || containsFold(v, "bulk") || containsFold(v, "list") {
			return Bulk
		}
	}
	for _, v := range h.Values("Auto-Submitted") {
		// RFC 3834 section 5: auto-submitted = "no" / "auto-generated" /
		// "auto-replied" / extension, with optional parameters after ';'.
		kw, _, _ := strings.Cut(v, ";")
		if !strings.EqualFold(strings.TrimSpace(stripComments(kw)), "no") {
			return AutoSubmitted
		}
	}
	if r.Addressed && !addressed(h, own) {
		return NotAddressed
	}
	return Replied
}

func compatRules(h Header) Reason {
	if _, ok := h.Get("Mailing-List"); ok {
		return MailingList
	}
	if v, ok := h.Get("Delivered-To"); ok && containsFold(v, "autoresponder") {
		return Loop
	}
	if v, ok := h.Get("Precedence"); ok && (containsFold(v, "junk") || containsFold(v, "bulk") || containsFold(v, "list")) {
		return Bulk
	}
	return Replied
}

// noSender reports whether a sender is never answered: autorespond's rule
// (empty, beginning with "mailer-daemon", without '@', the double-bounce
// sender "#@[]"), a sender holding control characters (which would
// break the reply's header; autorespond wrote them as they were) and, in
// modern mode, the usual addresses of list software (owner-*, *-request,
// *-owner, RFC 2142's conventions) that a person does not read.
func noSender(s string, compat bool) bool {
	if s == "" || s == "#@[]" || !strings.Contains(s, "@") || hasPrefixFold(s, "mailer-daemon") {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	if compat {
		return false
	}
	if strings.ContainsAny(s, "<>") {
		return true
	}
	local := strings.ToLower(s[:strings.LastIndexByte(s, '@')])
	return strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") ||
		strings.HasSuffix(local, "-owner") || local == "listserv" || local == "majordomo"
}

// addresses returns the mailbox's addresses: Addresses, From and the
// envelope recipient.
func (r *Responder) addresses(env Envelope) []string {
	own := make([]string, 0, len(r.Addresses)+2)
	for _, a := range append([]string{r.From, env.Recipient}, r.Addresses...) {
		if a != "" {
			own = append(own, a)
		}
	}
	return own
}

// addressed reports whether one of own appears as an address in a To,
// Cc, Bcc, Resent-To, Resent-Cc or Resent-Bcc field.
func addressed(h Header, own []string) bool {
	for _, f := range h {
		switch strings.ToLower(f.Name) {
		case "to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc":
		default:
			continue
		}
		for _, a := range own {
			if containsAddress(f.Value, a) {
				return true
			}
		}
	}
	return false
}

// containsAddress reports whether addr appears in the field value v as a
// whole address (any case): not as part of a longer local part or domain.
func containsAddress(v, addr string) bool {
	lv, la := strings.ToLower(v), strings.ToLower(addr)
	for i := 0; ; {
		j := strings.Index(lv[i:], la)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(la)
		if (start == 0 || !addrByte(lv[start-1])) && (end == len(lv) || !addrByte(lv[end])) {
			return true
		}
		i = start + 1
	}
}

// addrByte reports whether b can be part of an address: RFC 5322 atext,
// '.' and '@'.
func addrByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~.@", b) >= 0
}

// stripComments removes RFC 5322 comments (parenthesised, nested).
func stripComments(s string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
