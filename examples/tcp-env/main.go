// Command tcp-env is qmail's tcp-env: started by inetd (or xinetd) with a
// TCP connection on descriptor 0, it sets the variables tcpserver would
// have set (package tcpenv) and runs program with them:
//
//	tcp-env [ -rR ] [ -tTIMEOUT ] program [ arg ... ]
//
// -r (the default) asks the client's ident server (RFC 1413) for
// TCPREMOTEINFO, waiting at most TIMEOUT seconds for each step (default
// 30; 0 asks nothing); -R does not ask. When $PROTO is already TCP
// (tcpserver started it), nothing is set. It exits 111 when descriptor 0
// is not a TCP socket, when no program is named, or when the program cannot
// be run. Unknown options are ignored, as tcp-env's do.
//
// In /etc/inetd.conf (Debian's openbsd-inetd), as qmail's documentation
// gives them:
//
//	smtp stream tcp nowait qmaild /var/qmail/bin/tcp-env tcp-env /var/qmail/bin/qmail-smtpd
//	pop3 stream tcp nowait root /var/qmail/bin/tcp-env tcp-env -R /var/qmail/bin/qmail-popup mail.example.org /var/qmail/bin/checkpassword /var/qmail/bin/qmail-pop3d Maildir
//
// (inetd passes no environment of its own: a home other than /var/qmail
// needs /usr/bin/env QMAILHOME=... in front.) For xinetd, the files in
// xinetd.d beside this program.
package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/inject"
	"github.com/qmailkit/qmailkit/tcpenv"
)

func main() {
	os.Exit(run(os.Args, os.Environ(), os.Stdin))
}

// run returns only on failure: otherwise it replaces the process.
func run(argv, environ []string, stdin *os.File) int {
	o := tcpenv.Options{RemoteInfo: true, Timeout: 30 * time.Second}
	g := inject.NewGetopt("tcp-env", argv[1:], "rRt:")
	for {
		c, arg, done, err := g.Next()
		if done {
			break
		}
		if err != nil {
			continue // tcp-env's subgetopt: an unknown option is ignored
		}
		switch c {
		case 'r':
			o.RemoteInfo = true
		case 'R':
			o.RemoteInfo = false
		case 't':
			o.Timeout = time.Duration(leadingDigits(arg)) * time.Second
		}
	}
	args := g.Rest()
	if len(args) < 1 {
		return 111
	}
	env := environ
	if getenv(environ, "PROTO") != "TCP" {
		// getsockname and getpeername on descriptor 0 itself: a
		// net.Conn made of it would leave it non-blocking for the program.
		local, remote, ok := tcpAddrs(int(stdin.Fd()))
		if !ok {
			return 111
		}
		if o.Timeout <= 0 {
			o.RemoteInfo = false
		}
		env = apply(environ, tcpenv.Env(context.Background(), local, remote, o))
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return 111
	}
	syscall.Exec(path, args, env)
	return 111
}

// apply returns environ with v's variables set and unset.
func apply(environ []string, v tcpenv.Vars) []string {
	drop := map[string]bool{}
	for k := range v.Set {
		drop[k] = true
	}
	for _, k := range v.Unset {
		drop[k] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	for _, k := range []string{"PROTO", "TCPLOCALIP", "TCPLOCALPORT", "TCPLOCALHOST", "TCPREMOTEIP", "TCPREMOTEPORT", "TCPREMOTEHOST", "TCPREMOTEINFO"} {
		if val, ok := v.Set[k]; ok {
			out = append(out, k+"="+val)
		}
	}
	return out
}

func getenv(environ []string, key string) string {
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			return val
		}
	}
	return ""
}

// leadingDigits is scan_ulong: the number its leading digits make, 0 for none.
func leadingDigits(s string) int64 {
	var n int64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1<<31; i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// tcpAddrs returns the two ends of the TCP connection on fd; ok is false
// when fd is not a TCP socket.
func tcpAddrs(fd int) (local, remote netip.AddrPort, ok bool) {
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
		return local, remote, false
	}
	ls, err := unix.Getsockname(fd)
	if err != nil {
		return local, remote, false
	}
	rs, err := unix.Getpeername(fd)
	if err != nil {
		return local, remote, false
	}
	local, ok1 := addrPort(ls)
	remote, ok2 := addrPort(rs)
	return local, remote, ok1 && ok2
}

func addrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}
