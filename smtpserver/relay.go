package smtpserver

import (
	"context"
	"maps"
	"net"
	"net/netip"
)

// relayFromEnv returns env with RELAYCLIENT set to "" when the client's
// address lies in one of RelayFrom's prefixes and env does not set
// RELAYCLIENT already; else env itself. The caller's map is never
// changed: a copy is returned.
func (srv *Server) relayFromEnv(c net.Conn, env map[string]string) map[string]string {
	if len(srv.RelayFrom) == 0 {
		return env
	}
	if _, ok := env["RELAYCLIENT"]; ok {
		return env
	}
	ip := remoteIP(env, c)
	if !ip.IsValid() {
		return env
	}
	for _, p := range srv.RelayFrom {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		if p.Contains(ip) {
			return withRelayClient(env)
		}
	}
	return env
}

// relayEnv is relayFromEnv, then, if the client may still not relay,
// Server.Relay's answer.
func (srv *Server) relayEnv(ctx context.Context, c net.Conn, env map[string]string) map[string]string {
	env = srv.relayFromEnv(c, env)
	if srv.Relay == nil {
		return env
	}
	if _, ok := env["RELAYCLIENT"]; ok {
		return env
	}
	s := &Session{Env: maps.Clone(env), RemoteAddr: c.RemoteAddr(), LocalAddr: c.LocalAddr(), RemoteIP: remoteIP(env, c)}
	if s.Env == nil {
		s.Env = map[string]string{}
	}
	if srv.Relay(ctx, s) {
		return withRelayClient(env)
	}
	return env
}

func withRelayClient(env map[string]string) map[string]string {
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["RELAYCLIENT"] = ""
	return env
}

// remoteIP is the client's address as a session sees it (Session.RemoteIP):
// TCPREMOTEIP, else the connection's remote address; IPv4-mapped addresses
// unmapped.
func remoteIP(env map[string]string, c net.Conn) netip.Addr {
	if ip, err := netip.ParseAddr(env["TCPREMOTEIP"]); err == nil {
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(addrString(c.RemoteAddr())); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
