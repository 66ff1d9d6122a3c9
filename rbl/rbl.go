package rbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Source is one DNS list, as one -r or -a option of rblsmtpd, with the -b and
// -c settings in force where the option stands (rblsmtpd acts on its options
// from left to right, so "-b -r a -B -r b" makes a's listings permanent and
// b's temporary).
type Source struct {
	// Base is the list's zone. The query name is the reversed client address
	// followed by Base ("7.2.0.192." + "zen.example"), not validated.
	Base string
	// Allow makes this an anti-RBL (-a): an A record for the name accepts
	// the client, and the sources after it are not asked. Otherwise (-r)
	// TXT records whose strings are not all empty list the client, and their
	// text becomes the reply.
	Allow bool
	// Permanent is -b: a listing by this source answers 553 rather than 451
	// (unless a lookup failed before it, see [Result]). The zero value is
	// rblsmtpd's default, -B. It has no effect on an Allow source.
	Permanent bool
	// FailClosed is -c: when the lookup fails temporarily, an -r source
	// blocks with 451 "temporary RBL lookup error" and an -a source is
	// passed over. The zero value is rblsmtpd's default, -C (fail open): a
	// failed -r source is passed over and a failed -a source accepts.
	FailClosed bool
}

// TempFailText is the reply text of a FailClosed -r source whose lookup
// failed.
const TempFailText = "temporary RBL lookup error"

// Checker decides, as ucspi-tcp's rblsmtpd does, whether a client may talk
// to the SMTP server. The zero value accepts everyone.
type Checker struct {
	// Sources are asked in order until one decides: an -r source that lists
	// the client blocks it, an -a source that lists it accepts it. Nobody
	// deciding accepts the client. Empty means no lookups (Debian's
	// rblsmtpd; djb's original added -r rbl.maps.vix.com when no -r was
	// given, a list that no longer exists).
	Sources []Source
	// DNS answers the lookups: *net.Resolver satisfies [DNSBLResolver], and
	// so does [DNSResolver], which asks as djb's resolver does (use it for
	// rblsmtpd's exact answers). When both DNS and Resolver are nil, a
	// [DNSResolver] with its defaults answers (djb's: $DNSCACHEIP, else
	// /etc/resolv.conf).
	DNS DNSBLResolver
	// Resolver answers the lookups when DNS is nil.
	//
	// Deprecated: set DNS, which *net.Resolver and DNSResolver satisfy.
	Resolver Resolver
	// Compat reverses every address as rblsmtpd 0.88 does, as text. In
	// modern mode (false), an IPv6 address is reversed nibble by nibble
	// (RFC 5782 section 2.4: 2001:db8::1 gives 1.0.0.0 ... 8.b.d.0.1.0.0.2.) and an
	// IPv4-mapped one as its IPv4 address; rblsmtpd 0.88 would ask for
	// "2001:db8::1." + base, which no list answers. Anything else,
	// IPv4 addresses included, is reversed as text in both modes.
	Compat bool
}

// Result is the decision about a client.
type Result struct {
	// Code is 0 when the client is not blocked (the SMTP server runs), else
	// the SMTP code of every refusal: 451 (temporary) or 553 (permanent).
	// A listing answers 451, rather than the 553 of a Permanent source,
	// when any lookup before it failed temporarily: rblsmtpd then does not
	// trust a permanent refusal.
	Code int
	// Text is the reason as the list or $RBLSMTPD gave it, not yet cut or
	// cleaned (see [Result.Message]).
	Text string
	// Err records the lookups that failed (joined), nil when none did. The
	// decision has taken them into account already.
	Err error
}

// Blocked reports whether the client is refused.
func (r Result) Blocked() bool { return r.Code != 0 }

// MaxText is how many bytes of the reason rblsmtpd puts in its reply.
const MaxText = 200

// Message is the reply line (without CRLF) rblsmtpd gives a blocked client,
// and logs: the code, a space, and the first [MaxText] bytes of the text,
// every byte outside 32..126 (control characters, bytes of UTF-8
// sequences) turned into '?'. It is empty when the client is not blocked.
func (r Result) Message() string {
	if r.Code == 0 {
		return ""
	}
	t := r.Text
	if len(t) > MaxText {
		t = t[:MaxText]
	}
	b := make([]byte, 0, 4+len(t))
	b = fmt.Appendf(b, "%d ", r.Code)
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < 32 || c > 126 {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}

// Override is the decision $RBLSMTPD makes when it is set (tcpserver's rules
// set it per client): empty accepts the client without any lookup; a value
// starting with '-' blocks it with 553 and the rest as text (possibly
// empty); any other value blocks it with 451 and the value as text. When it
// is set, rblsmtpd asks no list.
func Override(value string) Result {
	switch {
	case value == "":
		return Result{}
	case value[0] == '-':
		return Result{Code: 553, Text: value[1:]}
	default:
		return Result{Code: 451, Text: value}
	}
}

// Check asks the sources about the client at ip, the text of $TCPREMOTEIP
// (not validated; empty when unknown). Every resolver error counts as a
// temporary failure, the canceling of ctx included.
func (c *Checker) Check(ctx context.Context, ip string) Result {
	res := c.DNS
	if res == nil && c.Resolver != nil {
		res = oldResolver{c.Resolver}
	}
	if res == nil {
		res = &DNSResolver{}
	}
	rev := reverse(ip, c.Compat)
	var errs []error
	for _, s := range c.Sources {
		name := rev + s.Base
		if s.Allow {
			addrs, err := res.LookupNetIP(ctx, "ip4", name)
			if isNotFound(err) {
				addrs, err = nil, nil
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rbl: A %s: %w", name, err))
				if !s.FailClosed {
					return Result{Err: errors.Join(errs...)}
				}
				continue
			}
			if len(addrs) > 0 {
				return Result{Err: errors.Join(errs...)}
			}
			continue
		}
		txts, err := res.LookupTXT(ctx, name)
		if isNotFound(err) {
			txts, err = nil, nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rbl: TXT %s: %w", name, err))
			if s.FailClosed {
				return Result{Code: 451, Text: TempFailText, Err: errors.Join(errs...)}
			}
			continue
		}
		if t := strings.Join(txts, ""); t != "" {
			code := 451
			if s.Permanent && len(errs) == 0 {
				code = 553
			}
			return Result{Code: code, Text: t, Err: errors.Join(errs...)}
		}
	}
	return Result{Err: errors.Join(errs...)}
}

// isNotFound reports whether err says that a name, or a record of the type
// asked, does not exist (*net.Resolver's way): no listing, not a failure.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// oldResolver adapts a deprecated [Resolver] to the DNS field's interface.
type oldResolver struct{ r Resolver }

func (o oldResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return o.r.LookupTXT(ctx, name)
}

func (o oldResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return o.r.LookupA(ctx, host)
}

// reverse is the client's part of a query name. rblsmtpd's: the
// dot-separated parts of ip in reverse order, each followed by a dot, a
// leading empty part dropped ("" gives "", ".1" gives "1.", "1.2." gives
// ".2.1."). In modern mode an IPv6 address gives its nibbles.
func reverse(ip string, compat bool) string {
	if !compat && strings.Contains(ip, ":") {
		if a, err := netip.ParseAddr(ip); err == nil && a.Zone() == "" {
			if a.Is4In6() {
				ip = a.Unmap().String()
			} else {
				const hex = "0123456789abcdef"
				b := make([]byte, 0, 64)
				s := a.As16()
				for i := 15; i >= 0; i-- {
					b = append(b, hex[s[i]&15], '.', hex[s[i]>>4], '.')
				}
				return string(b)
			}
		}
	}
	parts := strings.Split(ip, ".")
	if parts[0] == "" {
		parts = parts[1:]
	}
	var b strings.Builder
	b.Grow(len(ip) + 1)
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteString(parts[i])
		b.WriteByte('.')
	}
	return b.String()
}
