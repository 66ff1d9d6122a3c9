package smtpclient

import (
	"strings"
	"unicode/utf8"
)

// aLabel returns domain with every non-ASCII label in its A-label form
// ("xn--" and the label's Punycode, RFC 3492), for DNS lookups. Labels are
// lower-cased first; the full IDNA2008 mapping (NFC, disallowed code points)
// is not applied. ok is false when the domain is not valid UTF-8 or a label
// cannot be encoded.
func aLabel(domain string) (string, bool) {
	if isASCII(domain) {
		return domain, true
	}
	if !utf8.ValidString(domain) {
		return "", false
	}
	labels := strings.Split(domain, ".")
	for i, l := range labels {
		if isASCII(l) {
			continue
		}
		p, ok := punycode(strings.ToLower(l))
		if !ok || len(p)+4 > 63 {
			return "", false
		}
		labels[i] = "xn--" + p
	}
	return strings.Join(labels, "."), true
}

// punycode encodes s as RFC 3492 section 6.3 says.
func punycode(s string) (string, bool) {
	const (
		base        = 36
		tmin        = 1
		tmax        = 26
		skew        = 38
		damp        = 700
		initialBias = 72
		initialN    = 128
		maxInt      = 1<<31 - 1
	)
	adapt := func(delta, points int, first bool) int {
		if first {
			delta /= damp
		} else {
			delta /= 2
		}
		delta += delta / points
		k := 0
		for delta > ((base-tmin)*tmax)/2 {
			delta /= base - tmin
			k += base
		}
		return k + (base-tmin+1)*delta/(delta+skew)
	}
	digit := func(d int) byte {
		if d < 26 {
			return byte('a' + d)
		}
		return byte('0' + d - 26)
	}
	runes := []rune(s)
	var out []byte
	for _, r := range runes {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	basic := len(out)
	h := basic
	if basic > 0 {
		out = append(out, '-')
	}
	n, delta, bias := initialN, 0, initialBias
	for h < len(runes) {
		m := maxInt
		for _, r := range runes {
			if int(r) >= n && int(r) < m {
				m = int(r)
			}
		}
		if (m - n) > (maxInt-delta)/(h+1) {
			return "", false
		}
		delta += (m - n) * (h + 1)
		n = m
		for _, r := range runes {
			if int(r) < n {
				delta++
			}
			if int(r) != n {
				continue
			}
			q := delta
			for k := base; ; k += base {
				t := min(max(k-bias, tmin), tmax)
				if q < t {
					break
				}
				out = append(out, digit(t+(q-t)%(base-t)))
				q = (q - t) / (base - t)
			}
			out = append(out, digit(q))
			bias = adapt(delta, h+1, h == basic)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return string(out), true
}
