// Package tcpenv gives the environment qmail's tcp-env sets for a TCP
// connection (see tcp-env(1)), so that a program started by inetd with the
// connection on its standard input (examples/tcp-env), or a Go server with a
// net.Conn, sees what tcpserver would have set:
//
//	PROTO           TCP
//	TCPLOCALIP      this end's address (IPv4 dotted, IPv6 as net/netip prints it)
//	TCPLOCALPORT    this end's port
//	TCPLOCALHOST    this end's name (the first PTR name, lower case); unset without one
//	TCPREMOTEIP     the client's address
//	TCPREMOTEPORT   the client's port
//	TCPREMOTEHOST   the client's name, as TCPLOCALHOST
//	TCPREMOTEINFO   what the client's ident server (RFC 1413) says, when asked
//
// A name lookup that fails for a reason other than "no such name" gives the
// name "softdnserror", as tcp-env does. An IPv4-mapped IPv6 address is
// given as IPv4.
package tcpenv

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Resolver finds the names of an address (PTR records); *net.Resolver is one.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Options choose what Env looks up.
type Options struct {
	// Resolver finds TCPLOCALHOST and TCPREMOTEHOST; nil means
	// net.DefaultResolver.
	Resolver Resolver
	// NoHosts leaves TCPLOCALHOST and TCPREMOTEHOST out without a lookup.
	NoHosts bool
	// RemoteInfo asks the client's ident server (port 113) for
	// TCPREMOTEINFO, as tcp-env -r (its default) does; tcp-env -R does not.
	RemoteInfo bool
	// Timeout bounds the ident exchange (each of connect, write and read);
	// 0 means 30 s, tcp-env's default (-t).
	Timeout time.Duration
}

// Vars are the variables tcp-env sets, and those it unsets: Env's result
// always names TCPLOCALHOST, TCPREMOTEHOST and TCPREMOTEINFO in Set or in
// Unset.
type Vars struct {
	Set   map[string]string
	Unset []string
}

// Env returns the environment of a connection between local and remote.
func Env(ctx context.Context, local, remote netip.AddrPort, o Options) Vars {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	v := Vars{Set: map[string]string{
		"PROTO":         "TCP",
		"TCPLOCALIP":    local.Addr().WithZone("").String(),
		"TCPLOCALPORT":  strconv.Itoa(int(local.Port())),
		"TCPREMOTEIP":   remote.Addr().WithZone("").String(),
		"TCPREMOTEPORT": strconv.Itoa(int(remote.Port())),
	}}
	host := func(name string, a netip.Addr) {
		if o.NoHosts {
			v.Unset = append(v.Unset, name)
			return
		}
		if h, ok := lookup(ctx, o.Resolver, a); ok {
			v.Set[name] = h
		} else {
			v.Unset = append(v.Unset, name)
		}
	}
	host("TCPLOCALHOST", local.Addr())
	host("TCPREMOTEHOST", remote.Addr())
	info, ok := "", false
	if o.RemoteInfo {
		info, ok = RemoteInfo(ctx, local.Addr(), remote, local.Port(), o.Timeout)
	}
	if ok {
		v.Set["TCPREMOTEINFO"] = info
	} else {
		v.Unset = append(v.Unset, "TCPREMOTEINFO")
	}
	return v
}

// ConnEnv is Env for a TCP connection's addresses; ok is false when c is
// not a TCP connection.
func ConnEnv(ctx context.Context, c net.Conn, o Options) (Vars, bool) {
	l, err1 := netip.ParseAddrPort(c.LocalAddr().String())
	r, err2 := netip.ParseAddrPort(c.RemoteAddr().String())
	if err1 != nil || err2 != nil || c.LocalAddr().Network() != "tcp" {
		return Vars{}, false
	}
	return Env(ctx, l, r, o), true
}

// lookup is tcp-env's name of a: the first PTR name, lower case, without
// its final dot; "softdnserror" when the lookup failed for a reason other
// than the name's absence; ok false when there is no name.
func lookup(ctx context.Context, r Resolver, a netip.Addr) (string, bool) {
	if r == nil {
		r = net.DefaultResolver
	}
	names, err := r.LookupAddr(ctx, a.String())
	var de *net.DNSError
	switch {
	case err == nil && len(names) > 0 && strings.TrimSuffix(names[0], ".") != "":
		return strings.ToLower(strings.TrimSuffix(names[0], ".")), true
	case err == nil, errors.As(err, &de) && de.IsNotFound:
		return "", false
	}
	return "softdnserror", true
}

// maxInfo is the most of an ident answer kept, as tcp-env.
const maxInfo = 997

// RemoteInfo asks the ident server (RFC 1413) of remote about the
// connection from remote's port to localPort, from the local address, as
// tcp-env does: it sends "REMOTEPORT , LOCALPORT", and the answer is the
// reply line's text after its third colon, white space removed (so an
// ERROR reply, with two colons, gives ""). ok is false when the server
// cannot be reached or does not answer a whole line within timeout (each
// step; 0 means 30 s).
func RemoteInfo(ctx context.Context, local netip.Addr, remote netip.AddrPort, localPort uint16, timeout time.Duration) (string, bool) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(remote.Addr(), 113).String())
	if err != nil {
		return "", false
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "%d , %d\r\n", remote.Port(), localPort); err != nil {
		return "", false
	}
	// The whole line within timeout: a server that drips bytes, or
	// sends no colon, does not hold tcp-env longer.
	c.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(c, 32)
	var out []byte
	colons := 0
	for {
		ch, err := br.ReadByte()
		if err != nil {
			return "", false
		}
		switch {
		case ch == ' ' || ch == '\t' || ch == '\r':
			continue
		case ch == '\n':
			return string(out), true
		case colons < 3:
			if ch == ':' {
				colons++
			}
		default:
			out = append(out, ch)
			if len(out) == maxInfo {
				return string(out), true
			}
		}
	}
}

// FromConn is the environment a server gives a connection: the
// connection's own Env() map[string]string when it has one (a
// tcprules.Listener's connections do: tcpserver's variables, rules'
// settings, PROXY's client), looked for under a *tls.Conn too (implicit
// TLS); otherwise PROTO, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP and
// TCPLOCALPORT from its addresses, without lookups. The map is the
// connection's or a new one: a caller that changes it copies it first.
func FromConn(c net.Conn) map[string]string {
	for x := c; ; {
		if e, ok := x.(interface{ Env() map[string]string }); ok {
			if env := e.Env(); env != nil {
				return env
			}
			break
		}
		tc, ok := x.(*tls.Conn)
		if !ok {
			break
		}
		x = tc.NetConn()
	}
	env := map[string]string{"PROTO": "TCP"}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		env["TCPREMOTEIP"] = ap.Addr().Unmap().WithZone("").String()
		env["TCPREMOTEPORT"] = strconv.Itoa(int(ap.Port()))
	}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		env["TCPLOCALIP"] = ap.Addr().Unmap().WithZone("").String()
		env["TCPLOCALPORT"] = strconv.Itoa(int(ap.Port()))
	}
	return env
}
