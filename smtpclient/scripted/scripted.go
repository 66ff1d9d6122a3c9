// Package scripted is a scripted SMTP server on 127.0.0.1 for tests of SMTP
// clients (smtpclient's and examples/qmail-remote's): it accepts everything
// by default, lets a test choose the reply to any step or close the
// connection there, and records the dialogue and the bytes of each message.
package scripted

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a scripted SMTP server on 127.0.0.1 for tests. By default
// it accepts everything; Reply overrides the reply to any step.
type Server struct {
	// Port is the server's port on 127.0.0.1 (0 for a Pipe server).
	Port int
	// The fields below are read by each session when it starts: change
	// them with SetExt, SetTLS and SetReply, which lock.
	//
	// Ext lists the EHLO extensions offered ("PIPELINING", "SIZE 1000").
	// nil: EHLO is answered "502 unimplemented" (a qmail-like server).
	Ext []string
	// TLS, when set, is used for STARTTLS (offer it through Ext).
	TLS *tls.Config
	// Reply returns the reply to a step, "" for the default, "CLOSE" to
	// close the connection without a reply. step is "GREETING", the
	// command's verb ("MAIL", "RCPT", ...), or "." after the data; n counts
	// that verb within the connection, from 1; line is the command line.
	Reply func(step string, n int, line string) string

	t     testing.TB
	ln    net.Listener
	mu    sync.Mutex
	log   []string // every command line, and "<data>" entries
	data  []string // raw bytes after 354, terminator included
	conns int
	wg    sync.WaitGroup
	live  sync.WaitGroup // sessions in progress
}

// Pipe returns a server without a listener: connections come only through
// its DialContext, over net.Pipe, which makes it usable inside a
// testing/synctest bubble.
func Pipe(t testing.TB) *Server {
	f := &Server{t: t}
	t.Cleanup(f.wg.Wait)
	return f
}

// DialContext connects to the server over net.Pipe, whatever the address;
// a *Server is an smtpclient.Dialer.
func (f *Server) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	client, server := net.Pipe()
	f.mu.Lock()
	f.conns++
	f.live.Add(1) // under mu: see Settle
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.live.Done()
		defer server.Close()
		f.session(server)
	}()
	return client, nil
}

// SetReply sets Reply safely while sessions may run.
func (f *Server) SetReply(r func(step string, n int, line string) string) {
	f.mu.Lock()
	f.Reply = r
	f.mu.Unlock()
}

// SetTLS sets TLS safely.
func (f *Server) SetTLS(c *tls.Config) {
	f.mu.Lock()
	f.TLS = c
	f.mu.Unlock()
}

// SetExt sets Ext safely.
func (f *Server) SetExt(ext []string) {
	f.mu.Lock()
	f.Ext = ext
	f.mu.Unlock()
}

// Settle waits until every session the server accepted has ended.
//
// A session's live.Add happens under mu, and Settle takes mu before it
// waits: the network gives the race detector no happens-before edge between
// a client seeing its connection end and the server's Add, and the mutex
// supplies one.
func (f *Server) Settle() {
	f.mu.Lock()
	f.mu.Unlock()
	f.live.Wait()
}

// New starts a server that stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Server{t: t, ln: ln, Port: ln.Addr().(*net.TCPAddr).Port}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

// Log returns every command line received, and "<data>" (or "<data cut>")
// where a message was (partly) received.
func (f *Server) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// Data returns the bytes received after each 354, terminator included.
func (f *Server) Data() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.data...)
}

// Conns returns the number of connections accepted.
func (f *Server) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func (f *Server) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns++
		f.live.Add(1) // under mu: see Settle
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.live.Done()
			defer c.Close()
			f.session(c)
		}()
	}
}

func (f *Server) record(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

func (f *Server) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	var nc net.Conn = c
	counts := map[string]int{}
	f.mu.Lock()
	replyFn, ext, tlsConf := f.Reply, f.Ext, f.TLS
	f.mu.Unlock()
	reply := func(step, line, def string) bool {
		counts[step]++
		r := def
		if replyFn != nil {
			if o := replyFn(step, counts[step], line); o != "" {
				r = o
			}
		}
		if r == "CLOSE" {
			return false
		}
		r = strings.ReplaceAll(r, "\n", "\r\n")
		_, err := nc.Write([]byte(r + "\r\n"))
		return err == nil
	}
	if !reply("GREETING", "", "220 fake ESMTP") {
		return
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if line != "" {
				f.record("PARTIAL " + line)
			}
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		f.record(line)
		verb, _, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		switch verb {
		case "EHLO":
			if ext == nil {
				if !reply(verb, line, "502 unimplemented") {
					return
				}
				continue
			}
			r := "250"
			if len(ext) > 0 {
				r += "-"
			} else {
				r += " "
			}
			r += "fake"
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				r += "\n250" + sep + e
			}
			if !reply(verb, line, r) {
				return
			}
		case "HELO", "MAIL", "RCPT", "RSET", "NOOP":
			if !reply(verb, line, "250 ok") {
				return
			}
		case "STARTTLS":
			counts[verb]++
			r := "220 go ahead"
			if replyFn != nil {
				if o := replyFn(verb, counts[verb], line); o != "" {
					r = o
				}
			}
			nc.Write([]byte(r + "\r\n"))
			if !strings.HasPrefix(r, "220") {
				continue
			}
			tc := tls.Server(c, tlsConf)
			if err := tc.Handshake(); err != nil {
				f.record("TLS FAILED")
				return
			}
			f.record("TLS OK")
			nc = tc
			br = bufio.NewReader(tc)
		case "AUTH":
			if strings.EqualFold(line, "AUTH LOGIN") {
				for _, prompt := range []string{"334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"} {
					nc.Write([]byte(prompt + "\r\n"))
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					f.record(strings.TrimSuffix(l, "\r\n"))
				}
			}
			if !reply(verb, line, "235 ok") {
				return
			}
		case "DATA":
			counts["DATA"]++
			r := "354 go ahead"
			if replyFn != nil {
				if o := replyFn("DATA", counts["DATA"], line); o != "" {
					r = o
				}
			}
			if r == "CLOSE" {
				return
			}
			nc.Write([]byte(strings.ReplaceAll(r, "\n", "\r\n") + "\r\n"))
			if r[0] != '3' {
				continue
			}
			var data strings.Builder
			for {
				l, err := br.ReadString('\n')
				data.WriteString(l)
				if err != nil {
					f.mu.Lock()
					f.data = append(f.data, data.String())
					f.mu.Unlock()
					f.record("<data cut>")
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			f.mu.Lock()
			f.data = append(f.data, data.String())
			f.mu.Unlock()
			f.record("<data>")
			if !reply(".", "", "250 ok 12345 qp 678") {
				return
			}
		case "QUIT":
			reply(verb, line, "221 bye")
			return
		default:
			if !reply(verb, line, "502 unimplemented") {
				return
			}
		}
	}
}
