// Command qmail-smtpd is a drop-in for qmail's qmail-smtpd built on the
// smtpserver package.
//
// Under tcpserver (or tcp-env) it speaks SMTP on descriptors 0 and 1, reads
// tcpserver's variables and QMAILHOME's control files, and hands each
// message to $QMAILQUEUE or QMAILHOME/bin/qmail-queue, exactly as
// qmail-smtpd does:
//
//	tcpserver -x /etc/tcp.smtp.cdb -u 64011 -g 64010 0 smtp qmail-smtpd
//
// With -listen it serves on its own, applying a tcprules cdb and a
// concurrency limit as tcpserver would:
//
//	qmail-smtpd -listen 127.0.0.1:2525 -x rules.cdb -c 40
//
// The rules cdb is looked at for every connection; the control files are
// read once at start (qmail-smtpd reads them per connection: restart after
// changing them).
//
// Flags: -home DIR (default $QMAILHOME, else /var/qmail); -modern for the
// 2026 behaviour (enhanced status codes, SIZE, SMTPUTF8, CHUNKING, limits,
// bare CR refused) instead of qmail's. STARTTLS is offered when
// control/servercert.pem exists (certificate and key, the qmail TLS patch's
// file), re-read when it changes. AUTH is offered, as with the qmail AUTH
// patches, when arguments follow: "hostname checkpassword-program
// subprogram [args]".
//
// Exit status: 0 after QUIT, 1 otherwise (end of input, timeout, bare LF,
// unreadable controls), as qmail-smtpd.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/tcprules"
)

func main() {
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(run(os.Args[1:], environ(), os.Stdin, os.Stdout, os.Stderr))
}

func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func run(args []string, env map[string]string, stdin, stdout *os.File, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmail-smtpd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "qmail home directory (default $QMAILHOME, else /var/qmail)")
	modern := fs.Bool("modern", false, "2026 behaviour instead of qmail's")
	listen := fs.String("listen", "", "serve on this address instead of descriptors 0 and 1")
	rules := fs.String("x", "", "with -listen: tcprules cdb (tcpserver -x)")
	limit := fs.Int("c", 40, "with -listen: concurrent connections (tcpserver -c)")
	if err := fs.Parse(args); err != nil {
		return 100
	}
	*home = control.Home(*home, func(k string) string { return env[k] })
	srv, closeCtl, err := configure(*home, !*modern, fs.Args())
	if *listen == "" {
		conn := newStdioConn(stdin, stdout, env)
		if err != nil {
			conn.Write([]byte("421 unable to read controls (#4.3.0)\r\n"))
			return 1
		}
		defer closeCtl()
		if err := srv.ServeConn(context.Background(), conn, env); err != nil {
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "qmail-smtpd: unable to read controls: %v\n", err)
		return 111
	}
	defer closeCtl()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "qmail-smtpd: %v\n", err)
		return 111
	}
	tl := &tcprules.Listener{Listener: l, Rules: *rules, Limit: *limit}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		srv.Close()
	}()
	fmt.Fprintf(stderr, "qmail-smtpd: listening on %s\n", l.Addr())
	if err := srv.Serve(tl); err != nil && !errors.Is(err, smtpserver.ErrServerClosed) {
		fmt.Fprintf(stderr, "qmail-smtpd: %v\n", err)
		return 111
	}
	return 0
}

// configure builds the server from QMAILHOME as qmail-smtpd does at start.
func configure(home string, compat bool, authArgs []string) (*smtpserver.Server, func() error, error) {
	srv := &smtpserver.Server{Compat: compat}
	if err := os.Chdir(home); err != nil {
		return nil, nil, err
	}
	d := control.Dir{Home: home}
	closeCtl, err := d.SMTPD(srv, false)
	if err != nil {
		return nil, nil, err
	}
	// qmail-queue finds the queue through $QMAILHOME: hand -home down to it.
	srv.Enqueuer = &smtpserver.QmailQueue{Path: d.QueueProgram(), Dir: home, Env: append(os.Environ(), "QMAILHOME="+home)}
	if _, err := os.Stat(d.Path("servercert.pem")); err == nil {
		cr := &smtpserver.CertReloader{CertFile: d.Path("servercert.pem"), KeyFile: d.Path("servercert.pem")}
		srv.TLSConfig = &tls.Config{GetCertificate: cr.GetCertificate}
	}
	if len(authArgs) >= 3 {
		srv.Auth = smtpserver.Checkpassword(authArgs[1], authArgs[2:]...)
	}
	return srv, closeCtl, nil
}

// stdioConn is the SMTP connection on descriptors 0 and 1.
type stdioConn struct {
	in, out       *os.File
	local, remote net.Addr
}

func newStdioConn(in, out *os.File, env map[string]string) *stdioConn {
	// Non-blocking descriptors are pollable, so read and write deadlines
	// (timeoutsmtpd) work on sockets and pipes.
	for _, f := range []*os.File{in, out} {
		syscall.SetNonblock(int(f.Fd()), true)
	}
	c := &stdioConn{
		in:     os.NewFile(in.Fd(), "stdin"),
		out:    os.NewFile(out.Fd(), "stdout"),
		local:  envAddr(env, "TCPLOCALIP", "TCPLOCALPORT"),
		remote: envAddr(env, "TCPREMOTEIP", "TCPREMOTEPORT"),
	}
	return c
}

func envAddr(env map[string]string, ip, port string) net.Addr {
	a, _ := netip.ParseAddr(env[ip])
	var p uint16
	fmt.Sscan(env[port], &p)
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, p))
}

func (c *stdioConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *stdioConn) Close() error {
	c.in.Close()
	return c.out.Close()
}
func (c *stdioConn) LocalAddr() net.Addr  { return c.local }
func (c *stdioConn) RemoteAddr() net.Addr { return c.remote }
func (c *stdioConn) SetDeadline(t time.Time) error {
	c.in.SetReadDeadline(t)
	return c.out.SetWriteDeadline(t)
}
func (c *stdioConn) SetReadDeadline(t time.Time) error  { return c.in.SetReadDeadline(t) }
func (c *stdioConn) SetWriteDeadline(t time.Time) error { return c.out.SetWriteDeadline(t) }
