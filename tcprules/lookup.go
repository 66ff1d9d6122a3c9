package tcprules

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

// DB is an open rules cdb, as written by tcprules or [CompileFile]. It is
// safe for concurrent lookups.
type DB struct {
	c    *cdb.CDB
	keys sync.Pool // of *[]byte: key buffers, which the cdb reader lets escape
}

// Open opens the rules cdb at path. The DB keeps reading the file it opened
// even if a new one is renamed over path; open again to see the new rules
// (the [Listener] does that when the file changes).
func Open(path string) (*DB, error) {
	c, err := cdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tcprules: %w", err)
	}
	return &DB{c: c}, nil
}

// OpenBytes reads a rules cdb held in memory, such as the result of
// [Compile]. data must not change while the DB is in use.
func OpenBytes(data []byte) (*DB, error) {
	c, err := cdb.Bytes(data)
	if err != nil {
		return nil, fmt.Errorf("tcprules: %w", err)
	}
	return &DB{c: c}, nil
}

// Close releases the DB. No lookup may be running or start afterwards.
func (db *DB) Close() error { return db.c.Close() }

// Decision is the outcome of a lookup.
type Decision struct {
	// Found is true when a key matched. When false, the connection is
	// allowed with no variables (tcprulescheck: "default:").
	Found bool
	// Key is the key that matched (tcprulescheck: "rule KEY:").
	Key string
	// Deny is true when the rule's value holds a D item: drop the
	// connection, whatever else the value says.
	Deny bool
	// Env holds every +NAME=VALUE item of the value, in order, split at
	// the first '='. Set them in this order: a later one for the same name
	// overrides an earlier one, as tcpserver does. Items without '=' are
	// left out, as tcpserver ignores them.
	Env []Var

	value string // the raw value, for Report
}

// Report returns what tcprulescheck prints for this decision, byte for byte:
// "rule KEY:" or "default:", a "set environment variable ..." line for each
// + item up to the first D item, then "deny connection" or "allow
// connection".
func (d Decision) Report() string {
	var b strings.Builder
	if !d.Found {
		return "default:\nallow connection\n"
	}
	b.WriteString("rule ")
	b.WriteString(d.Key)
	b.WriteString(":\n")
	for v := d.value; ; {
		i := strings.IndexByte(v, 0)
		if i < 0 {
			break
		}
		switch item := v[:i]; {
		case strings.HasPrefix(item, "D"):
			b.WriteString("deny connection\n")
			return b.String()
		case strings.HasPrefix(item, "+"):
			b.WriteString("set environment variable ")
			b.WriteString(item[1:])
			b.WriteString("\n")
		}
		v = v[i+1:]
	}
	b.WriteString("allow connection\n")
	return b.String()
}

// Apply sets the decision's variables in env, in order, as tcpserver does
// before running the server program.
func (d Decision) Apply(env map[string]string) {
	for _, v := range d.Env {
		env[v.Name] = v.Value
	}
}

// decide reads a rule's value as tcpserver does (tcpserver.c found()).
func decide(key string, value []byte) Decision {
	d := Decision{Found: true, Key: key, value: string(value)}
	for v := d.value; ; {
		i := strings.IndexByte(v, 0)
		if i < 0 {
			break
		}
		item := v[:i]
		if item != "" {
			switch item[0] {
			case 'D':
				d.Deny = true
			case '+':
				if name, value, ok := strings.Cut(item[1:], "="); ok {
					d.Env = append(d.Env, Var{Name: name, Value: value})
				}
			}
		}
		v = v[i+1:]
	}
	return d
}

// Lookup finds the rule for a connection from ip, as tcpserver -x and
// tcprulescheck do. host is $TCPREMOTEHOST and info $TCPREMOTEINFO: nil when
// unknown, which is not the same as an empty string. ip is used as text, as
// tcpserver formats it (see [FormatIP]). The keys tried, in order: INFO@IP,
// INFO@=HOST, IP, =HOST, each prefix of IP ending in '.' or ':' (longest
// first), =SUFFIX for each '.' of HOST from the left, "=", and the empty key;
// the first key present decides, by its first record.
//
// An error means the cdb is unreadable or corrupt; tcpserver then drops the
// connection. A lookup costs one probe per dot of ip and of host, each over
// a key as long as the text, as in tcpserver: fine for real addresses and
// DNS names (at most 255 bytes), slow for megabyte strings.
func (db *DB) Lookup(ip string, host, info *string) (Decision, error) {
	bp, _ := db.keys.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer db.keys.Put(bp)
	try := func(parts ...string) (Decision, bool, error) {
		k := (*bp)[:0]
		for _, p := range parts {
			k = append(k, p...)
		}
		*bp = k
		v, err := db.c.Get(k)
		if err != nil {
			return Decision{}, false, fmt.Errorf("tcprules: %w", err)
		}
		if v == nil {
			return Decision{}, false, nil
		}
		return decide(string(k), v), true, nil
	}
	if info != nil {
		if d, ok, err := try(*info, "@", ip); ok || err != nil {
			return d, err
		}
		if host != nil {
			if d, ok, err := try(*info, "@=", *host); ok || err != nil {
				return d, err
			}
		}
	}
	if d, ok, err := try(ip); ok || err != nil {
		return d, err
	}
	if host != nil {
		if d, ok, err := try("=", *host); ok || err != nil {
			return d, err
		}
	}
	for n := len(ip); n > 0; n-- {
		if c := ip[n-1]; c == '.' || c == ':' {
			if d, ok, err := try(ip[:n]); ok || err != nil {
				return d, err
			}
		}
	}
	if host != nil {
		h := *host
		for i := 0; i < len(h); i++ {
			if h[i] == '.' {
				if d, ok, err := try("=", h[i:]); ok || err != nil {
					return d, err
				}
			}
		}
		if d, ok, err := try("="); ok || err != nil {
			return d, err
		}
	}
	d, _, err := try()
	return d, err
}

// FormatIP writes an address as tcpserver does, which is the text rules are
// matched against: IPv4 (and IPv4-mapped IPv6) as dotted decimal; IPv6 in
// lower-case hex with the longest run of zero groups, even a single group,
// written as "::" (the first run when two are as long). netip.Addr.String
// differs for a single zero group (RFC 5952): 2001:db8:0:1:1:1:1:1 is
// "2001:db8::1:1:1:1:1" here. A zone is dropped.
func FormatIP(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	b := a.As16()
	// Find the longest run of zero groups (libowfat fmt_ip6).
	bestPos, bestLen := -1, 0
	for k := 0; k < 16; {
		if b[k] != 0 || b[k+1] != 0 {
			k += 2
			continue
		}
		start := k
		for k < 16 && b[k] == 0 && b[k+1] == 0 {
			k += 2
		}
		if k-start > bestLen {
			bestPos, bestLen = start, k-start
		}
	}
	var out []byte
	for k := 0; k < 16; k += 2 {
		if k == bestPos {
			if k == 0 {
				out = append(out, ':')
			}
			out = append(out, ':')
			k += bestLen - 2
			continue
		}
		out = strconv.AppendUint(out, uint64(b[k])<<8|uint64(b[k+1]), 16)
		if k < 14 {
			out = append(out, ':')
		}
	}
	return string(out)
}

// hostText returns a PTR name as tcpserver sets $TCPREMOTEHOST: without the
// final dot, lower-cased, and every byte other than a-z, 0-9, '-', '_' and
// the dots between labels written as a backslash and three octal digits
// (djbdns dns_domain_todot_cat).
func hostText(name string) string {
	name = strings.TrimSuffix(name, ".")
	var b bytes.Buffer
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteByte(c)
		default:
			b.WriteByte('\\')
			b.WriteByte('0' + c>>6)
			b.WriteByte('0' + (c>>3)&7)
			b.WriteByte('0' + c&7)
		}
	}
	return b.String()
}
