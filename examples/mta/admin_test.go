package main

import (
	"net"
	"testing"
)

// The web admin is served in plain HTTP only on a loopback address: a
// wildcard, another interface's address or a Unix socket is refused, so
// that passwords and session cookies never cross a network in clear.
func TestAdminPlainOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 1, 2, 3), Port: 8080}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 8080}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, false},
		{&net.TCPAddr{Port: 8080}, false}, // ":8080", every address
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8080}, false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 8080, Zone: "lo"}, false},
		{&net.UnixAddr{Name: "/tmp/admin.sock", Net: "unix"}, false},
	}
	for _, tc := range tests {
		if got := loopback(tc.addr); got != tc.want {
			t.Errorf("loopback(%s %q) = %v; want %v", tc.addr.Network(), tc.addr, got, tc.want)
		}
	}
}
