package mta

import (
	"maps"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/qmailkit/qmailkit/smtpserver"
)

// relayListener gives the connections of clients whose address is in one
// of the prefixes (SMTPPolicy.RelayClients, as Reload last set them)
// RELAYCLIENT, as tcp.smtp's rules give it: they may relay. A connection
// that already has an environment (tcprules') keeps it, RELAYCLIENT added.
type relayListener struct {
	net.Listener
	prefixes *atomic.Pointer[[]netip.Prefix]
}

func (l relayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	p := l.prefixes.Load()
	if p == nil || len(*p) == 0 {
		return c, nil
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return c, nil
	}
	ip := ap.Addr().Unmap()
	for _, pre := range *p {
		if pre.Contains(ip) {
			return relayConn{c}, nil
		}
	}
	return c, nil
}

// relayConn is a connection whose client may relay.
type relayConn struct{ net.Conn }

// Env is the connection's environment with RELAYCLIENT set (empty: the
// recipient is not rewritten).
func (c relayConn) Env() map[string]string {
	env := maps.Clone(smtpserver.ConnEnv(c.Conn))
	if _, ok := env["RELAYCLIENT"]; !ok {
		env["RELAYCLIENT"] = ""
	}
	return env
}
