package lspawn_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/lspawn"
)

// A Client hands a delivery to a Server over a socketpair; in examples/mta
// the Server is a root helper process and its Local a *dotqmail.Local.
func Example() {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			panic(err)
		}
		return c.(*net.UnixConn)
	}
	client, server := conn(fds[0]), conn(fds[1])
	local := lspawn.DelivererFunc(func(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
		b, _ := io.ReadAll(msg)
		return dotqmail.Result{Report: fmt.Sprintf("did 1+0+0 (%d bytes for %s)\n", len(b), recipient)}, nil
	})
	done := make(chan error)
	go func() { done <- (&lspawn.Server{Local: local}).ServeConn(context.Background(), server) }()

	c := lspawn.NewClient(client)
	res, err := c.Deliver(context.Background(), "bob@example.org", "joe@example.com", strings.NewReader("Subject: hi\n\nhello\n"))
	fmt.Print(res.Report, err, "\n")
	c.Close()
	fmt.Println(<-done)
	// Output:
	// did 1+0+0 (19 bytes for joe@example.com)
	// <nil>
	// <nil>
}
