package smtpserver

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// qmail's default timeoutsmtpd is 1200 s per read: a silent client gets
// "451 timeout (#4.4.2)" after exactly that, and not before.
func TestDefaultTimeoutSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := compatServer(&sink{})
		srv.Timeout = 0 // qmail's default
		client, server := net.Pipe()
		defer client.Close()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), server, qmailEnv()) }()
		r := bufio.NewReader(client)
		if l, _ := r.ReadString('\n'); l != "220 mx.example.org ESMTP\r\n" {
			t.Fatalf("greeting %q", l)
		}
		start := time.Now()
		got := make(chan string, 1)
		go func() { l, _ := r.ReadString('\n'); got <- l }()
		time.Sleep(1199 * time.Second)
		synctest.Wait()
		select {
		case l := <-got:
			t.Fatalf("reply after %v: %q", time.Since(start), l)
		default:
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if l := <-got; l != "451 timeout (#4.4.2)\r\n" {
			t.Fatalf("after 1200 s: %q", l)
		}
		if err := <-done; err != ErrTimeout {
			t.Fatalf("ServeConn = %v", err)
		}
	})
}

// The AUTH failure delay doubles: 1 s, 2 s, then the third failure closes.
func TestAuthDelaySynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := compatServer(&sink{})
		srv.Compat = false
		srv.AuthOnLoopback = true
		srv.Auth = Authenticator(func(ctx context.Context, u, p string) error { return ErrBadCredentials })
		client, server := net.Pipe()
		defer client.Close()
		env := qmailEnv()
		env["TCPREMOTEIP"] = "127.0.0.1"
		go srv.ServeConn(context.Background(), server, env)
		r := bufio.NewReader(client)
		r.ReadString('\n')
		var waits []time.Duration
		for i := 0; i < 3; i++ {
			start := time.Now()
			go client.Write([]byte("AUTH PLAIN AGpvZQB4\r\n"))
			l, _ := r.ReadString('\n')
			if !strings.HasPrefix(l, "535 ") {
				t.Fatalf("reply %q", l)
			}
			waits = append(waits, time.Since(start))
		}
		if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "421 ") {
			t.Fatalf("after 3 failures: %q", l)
		}
		if waits[0] != time.Second || waits[1] != 2*time.Second || waits[2] != 4*time.Second {
			t.Fatalf("delays %v", waits)
		}
	})
}
