package smtpclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TLSPolicy says what a connection does about STARTTLS (RFC 3207).
type TLSPolicy int

const (
	// TLSOpportunistic (the zero value) uses STARTTLS when the server offers
	// it, without requiring a valid certificate (RFC 7435), and falls back to
	// plaintext on the same address once if the handshake fails.
	TLSOpportunistic TLSPolicy = iota
	// TLSNone never uses STARTTLS (qmail-remote's behaviour).
	TLSNone
	// TLSRequire requires STARTTLS but not a valid certificate: a server that
	// does not offer it, or a failed handshake, is a temporary failure.
	TLSRequire
	// TLSVerify requires STARTTLS and a certificate valid for the route's
	// ServerName (or the relay or MX name).
	TLSVerify
)

// String returns the policy's name: "opportunistic", "none", "require" or
// "verify".
func (p TLSPolicy) String() string {
	switch p {
	case TLSOpportunistic:
		return "opportunistic"
	case TLSNone:
		return "none"
	case TLSRequire:
		return "require"
	case TLSVerify:
		return "verify"
	}
	return "TLSPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Route is where mail for a domain goes instead of its MX hosts: a relay
// (smarthost), as qmail's control/smtproutes gives it, with the options Go
// callers may add.
type Route struct {
	// Relay is a host name or an IP address, bare or in brackets. Empty means
	// no artificial route: the normal MX lookup.
	Relay string
	// Port is the relay's port; 0 means the Client's port (25).
	Port int
	// TLS is the STARTTLS policy for this route.
	TLS TLSPolicy
	// ServerName is the name the certificate must match under TLSVerify;
	// empty means Relay.
	ServerName string
	// Username and Password, when Username is set, authenticate to the relay
	// with AUTH PLAIN or LOGIN (RFC 4954), only ever over TLS.
	Username, Password string
}

// Routes is a table of artificial routes, keyed by domain as in qmail's
// control/smtproutes. The zero value is an empty table.
type Routes struct {
	m map[string]Route
}

// ParseRoutes reads routes in control/smtproutes syntax (qmail-control(5)):
// one `domain:relay` or `domain:relay:port` per line; empty lines, lines
// starting with '#' and lines without a colon are ignored; trailing spaces and
// tabs are removed. As with the widely used qmail-remote AUTH patch (Tom
// Clegg's, in John Simpson's combined patch), the relay may be followed by
// white space, a user name, white space and a password (the rest of the
// line): `example.org:smtp.isp.example:587 joe s3cret` authenticates to
// that relay as joe. A '-' before the user name, which in that patch allows
// AUTH without TLS, is removed: credentials are sent only over TLS
// whatever the line says. A user name without a password is an error. The key (text before the first colon) is compared
// case-insensitively; when a key appears twice the later line wins, as in
// qmail's constmap. A relay in brackets may contain colons ("[IPv6:::1]").
func ParseRoutes(r io.Reader) (*Routes, error) {
	rs := &Routes{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		rt, err := parseRouteValue(value)
		if err != nil {
			return nil, fmt.Errorf("smtpclient: smtproutes line %d: %w", n, err)
		}
		rs.Set(key, rt)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("smtpclient: smtproutes: %w", err)
	}
	return rs, nil
}

// parseRouteValue splits "relay[:port]". Digits after the colon are the port;
// none means the default.
func parseRouteValue(v string) (Route, error) {
	var rt Route
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		cred := strings.TrimLeft(v[i:], " \t")
		v = v[:i]
		user, pass, _ := strings.Cut(cred, " ")
		if u, p, ok := strings.Cut(cred, "\t"); ok && len(u) < len(user) {
			user, pass = u, p
		}
		pass = strings.TrimLeft(pass, " \t")
		user = strings.TrimPrefix(user, "-")
		if user == "" || pass == "" {
			return rt, errors.New("a user name without a password")
		}
		rt.Username, rt.Password = user, pass
	}
	if v == "" {
		if rt.Username != "" {
			return rt, errors.New("credentials without a relay")
		}
		return rt, nil
	}
	relay, port, hasPort := v, "", false
	if strings.HasPrefix(v, "[") {
		if i := strings.IndexByte(v, ']'); i >= 0 {
			relay, port = v[:i+1], v[i+1:]
			port, hasPort = strings.CutPrefix(port, ":")
		}
	} else {
		relay, port, hasPort = strings.Cut(v, ":")
	}
	rt.Relay = relay
	if hasPort {
		i := 0
		for i < len(port) && port[i] >= '0' && port[i] <= '9' {
			i++
		}
		if i > 0 {
			p, err := strconv.Atoi(port[:i])
			if err != nil || p > 65535 {
				return rt, fmt.Errorf("bad port %q", port)
			}
			rt.Port = p
		}
	}
	return rt, nil
}

// Set adds or replaces the route for key: a domain ("example.com"), a suffix
// starting with a dot (".example.com", every subdomain) or "" (the default
// route). A Route with an empty Relay stops the search with "no route".
func (rs *Routes) Set(key string, rt Route) {
	if rs.m == nil {
		rs.m = map[string]Route{}
	}
	rs.m[strings.ToLower(key)] = rt
}

// Lookup finds the route for host as qmail-remote does: the whole host, then
// each suffix starting at a dot, longest first, then the empty key; the first
// key present wins. It returns false when no key matches or the matching
// route has an empty relay (meaning: use the MX records).
func (rs *Routes) Lookup(host string) (Route, bool) {
	if rs == nil || len(rs.m) == 0 {
		return Route{}, false
	}
	host = strings.ToLower(host)
	for i := 0; i <= len(host); i++ {
		if i != 0 && i != len(host) && host[i] != '.' {
			continue
		}
		if rt, ok := rs.m[host[i:]]; ok {
			return rt, rt.Relay != ""
		}
	}
	return Route{}, false
}
