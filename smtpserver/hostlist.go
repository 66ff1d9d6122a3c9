package smtpserver

import (
	"context"
	"strings"
)

// HostList returns a func with qmail's rcpthosts semantics, for
// [Server.RcptHostsContext] through [RcptHostsHook]:
// the domain and each of its suffixes that start at a dot, longest first ("a.b.c", ".b.c", ".c"), are compared case-insensitively
// with the lines of list; failing that, each is looked up with more (the
// morercpthosts.cdb, whose keys are lower-case), when more is not nil. So
// "example.com" matches only itself, and ".example.com" every subdomain.
// Case is folded in ASCII only, as qmail and the queue's routing do.
func HostList(list []string, more func(key string) (bool, error)) func(domain string) (bool, error) {
	set := make(map[string]bool, len(list))
	for _, l := range list {
		set[asciiLower(l)] = true
	}
	return func(domain string) (bool, error) {
		domain = asciiLower(domain)
		if matchSuffixes(domain, func(c string) bool { return set[c] }) {
			return true, nil
		}
		if more == nil {
			return false, nil
		}
		var err error
		ok := matchSuffixes(domain, func(c string) bool {
			if err != nil {
				return false
			}
			var found bool
			found, err = more(c)
			return found
		})
		return ok, err
	}
}

func matchSuffixes(domain string, has func(string) bool) bool {
	for c := domain; ; {
		if has(c) {
			return true
		}
		i := strings.IndexByte(c[min(1, len(c)):], '.')
		if i < 0 {
			return false
		}
		c = c[i+1:]
	}
}

// AddressList returns a func with qmail's badmailfrom semantics, for
// [Server.BadMailFromContext] through [BadMailFromHook]: an address matches a line case-insensitively, either whole or
// by its "@domain" part (from its last "@"). Empty lines never match, so
// neither does the null sender.
func AddressList(list []string) func(addr string) bool {
	set := make(map[string]bool, len(list))
	for _, l := range list {
		if l != "" {
			set[asciiLower(l)] = true
		}
	}
	return func(addr string) bool {
		a := asciiLower(addr)
		if a != "" && set[a] {
			return true
		}
		if i := strings.LastIndexByte(a, '@'); i >= 0 && set[a[i:]] {
			return true
		}
		return false
	}
}

// RcptHostsHook adapts a func of the domain alone, such as [HostList]'s, to
// [Server.RcptHostsContext]: the hook calls f with the domain and ignores
// the context and the session. A nil f gives a nil hook.
//
//	srv.RcptHostsContext = smtpserver.RcptHostsHook(smtpserver.HostList(domains, nil))
func RcptHostsHook(f func(domain string) (bool, error)) func(ctx context.Context, s *Session, domain string) (bool, error) {
	if f == nil {
		return nil
	}
	return func(_ context.Context, _ *Session, domain string) (bool, error) { return f(domain) }
}

// BadMailFromHook adapts a func of the sender alone, such as
// [AddressList]'s, to [Server.BadMailFromContext]: the hook calls f with
// the address and ignores the context and the session. A nil f gives a nil
// hook.
func BadMailFromHook(f func(addr string) bool) func(ctx context.Context, s *Session, addr string) bool {
	if f == nil {
		return nil
	}
	return func(_ context.Context, _ *Session, addr string) bool { return f(addr) }
}

// asciiLower folds A-Z to a-z and leaves every other byte as it is, as
// qmail's case_lowerb does: strings.ToLower would fold Unicode too (the
// Kelvin sign to "k") and merge invalid UTF-8 bytes, so that a domain the
// queue routes as remote could pass for a local one.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
