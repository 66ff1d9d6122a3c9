package queue

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// VirtualDomain is one line of control/virtualdomains: Key is a domain
// ("example.com"), a domain suffix starting with a dot (".example.com"), a
// whole address ("user@example.com") or empty (every non-local domain);
// Prepend is what the address is prefixed with, plus "-", to make it local.
// An empty Prepend makes matching addresses remote.
type VirtualDomain struct {
	Key     string
	Prepend string
}

// ParseVirtualDomains reads control/virtualdomains: one "key:prepend" per
// line; trailing spaces and tabs are stripped; empty lines, lines starting
// with "#" and lines without ":" are ignored; the key is the text before
// the first ":", the prepend all after it.
func ParseVirtualDomains(r io.Reader) ([]VirtualDomain, error) {
	var vds []VirtualDomain
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || line[0] == '#' {
			continue
		}
		k, p, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		vds = append(vds, VirtualDomain{Key: k, Prepend: p})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("queue: virtualdomains: %w", err)
	}
	return vds, nil
}

// Routing is what qmail-send's rewrite needs to route a recipient: the
// contents of control/locals, control/percenthack, control/virtualdomains
// and control/envnoathost.
type Routing struct {
	Locals         []string
	PercentHack    []string
	VirtualDomains []VirtualDomain
	// EnvNoAtHost is appended, after "@", to recipients without "@". Empty
	// means leave them alone (qmail's default is control/me).
	EnvNoAtHost string
}

// Route routes one recipient as qmail-send does at preprocessing: it
// returns the address to deliver to and whether it goes to the remote
// channel. See the package documentation's Routing section. Route compiles
// the lists on every call; the Scheduler compiles them once.
func (r Routing) Route(rcpt string) (addr string, remote bool) {
	return r.compile().route(rcpt)
}

// router is Routing compiled into constmaps: keys lowercased (ASCII), the
// last occurrence of a key wins.
type router struct {
	locals  map[string]bool
	percent map[string]bool
	vdoms   map[string]string
	noat    string
}

func (r Routing) compile() *router {
	c := &router{locals: set(r.Locals), percent: set(r.PercentHack), vdoms: map[string]string{}, noat: r.EnvNoAtHost}
	for _, v := range r.VirtualDomains {
		c.vdoms[lower(v.Key)] = v.Prepend
	}
	return c
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[lower(s)] = true
	}
	return m
}

// lower is ASCII case folding, as qmail's case_diffb.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// route is qmail-send's rewrite: "@" envnoathost is added to an address
// without "@", the percent hack is applied, then a domain in locals stays
// local, a virtualdomains match with a prepend becomes local as
// prepend-address, and anything else is remote (the bool is true).
func (c *router) route(rcpt string) (string, bool) {
	addr := rcpt
	if !strings.Contains(addr, "@") && c.noat != "" {
		addr += "@" + c.noat
	}
	// The percent hack.
	for {
		at := strings.LastIndexByte(addr, '@')
		if at < 0 || !c.percent[lower(addr[at+1:])] {
			break
		}
		pc := strings.LastIndexByte(addr[:at], '%')
		if pc < 0 {
			break
		}
		addr = addr[:pc] + "@" + addr[pc+1:at]
	}
	at := strings.LastIndexByte(addr, '@')
	domain := ""
	if at >= 0 {
		domain = addr[at+1:]
	}
	if c.locals[lower(domain)] {
		return addr, false
	}
	if p, ok := c.virtual(addr, domain, true); ok {
		if p == "" {
			return addr, true
		}
		return p + "-" + addr, false
	}
	return addr, true
}

// virtual finds the first existing virtualdomains key for an address: the
// whole address (when user is set), the domain, its dot-suffixes longest
// first, then the empty key.
func (c *router) virtual(addr, domain string, user bool) (string, bool) {
	if len(c.vdoms) == 0 {
		return "", false
	}
	if user {
		if p, ok := c.vdoms[lower(addr)]; ok {
			return p, true
		}
	}
	d := lower(domain)
	if p, ok := c.vdoms[d]; ok {
		return p, true
	}
	for i := 0; i < len(d); i++ {
		if d[i] == '.' {
			if p, ok := c.vdoms[d[i:]]; ok {
				return p, true
			}
		}
	}
	p, ok := c.vdoms[""]
	return p, ok
}

// stripPrepend removes a virtual-domain prepend from a routed recipient for
// its bounce record (qmail-send's stripvdomprepend); the user@domain form is
// not consulted.
func (c *router) stripPrepend(rcpt string) string {
	at := strings.LastIndexByte(rcpt, '@')
	domain := ""
	if at >= 0 {
		domain = rcpt[at+1:]
	}
	p, ok := c.virtual(rcpt, domain, false)
	if !ok || p == "" || !strings.HasPrefix(rcpt, p+"-") {
		return rcpt
	}
	return rcpt[len(p)+1:]
}
