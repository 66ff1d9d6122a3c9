// Command qmail-popup is a drop-in for qmail's qmail-popup: the POP3
// authorization state. It greets, reads USER and PASS (or APOP), and runs
// its subprogram, normally checkpassword, with the client's connection as
// fd 0 and 1 and "user\0password\0timestamp\0" on fd 3:
//
//	tcpserver 0 110 qmail-popup HOSTNAME checkpassword qmail-pop3d Maildir
//
// Its replies, greeting timestamp, one login per connection and exit
// status (always 1) are qmail-popup's. With -listen it
// accepts connections itself, as tcpserver would, and runs the subprogram
// for each:
//
//	qmail-popup -listen 127.0.0.1:110 [-x rules.cdb] [-c 40] HOSTNAME checkpassword qmail-pop3d Maildir
//
// -modern gives the modern server's replies instead of qmail's: those of
// pop3.Server without Compat (RFC 1939 fixes, CAPA, response codes).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/tcprules"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin, stdout *os.File, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmail-popup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "accept connections on `ADDR` instead of serving fd 0 and 1")
	rules := fs.String("x", "", "with -listen: tcprules `cdb` deciding who may connect (tcpserver -x)")
	allowMissing := fs.Bool("X", false, "with -listen and -x: allow connections while the cdb is missing")
	limit := fs.Int("c", tcprules.DefaultLimit, "with -listen: at most `N` sessions at once (tcpserver -c)")
	modern := fs.Bool("modern", false, "modern replies (pop3.Server without Compat) instead of qmail-popup's")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	args = fs.Args()
	if len(args) < 2 {
		// qmail-popup says this to the client, on fd 1.
		fmt.Fprint(stdout, "-ERR usage: popup hostname subprogram\r\n")
		return 1
	}
	srv := &pop3.Server{
		Hostname:       args[0],
		Compat:         !*modern,
		AllowPlaintext: true, // qmail-popup has no TLS: it is for trusted networks or a TLS proxy
		APOP:           true,
		Handoff:        &pop3.Checkpassword{Command: args[1:]},
	}
	if *listen == "" {
		conn := pop3.StdioConn(stdin, stdout)
		srv.ServeConn(context.Background(), conn, pop3.EnvMap(os.Environ()))
		return 1
	}
	srv.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "qmail-popup: %v\n", err)
		return 111
	}
	var l net.Listener = &tcprules.Listener{Listener: ln, Rules: *rules, AllowMissing: *allowMissing, Limit: *limit, Logger: srv.Logger}
	fmt.Fprintf(stderr, "qmail-popup: listening on %s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && err != pop3.ErrServerClosed {
		fmt.Fprintf(stderr, "qmail-popup: %v\n", err)
		return 111
	}
	return 0
}
