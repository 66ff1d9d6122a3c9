package pop3_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/pop3"
)

// A server with a Go func as Authenticator, over a Maildir.
func Example() {
	home, _ := os.MkdirTemp("", "pop3example")
	defer os.RemoveAll(home)
	maildir := filepath.Join(home, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(maildir, sub), 0o700)
	}
	msg := filepath.Join(maildir, "new", "1700000000.M1P1Q1R0.example")
	os.WriteFile(msg, []byte("Subject: hello\n\nHi!\n"), 0o600)
	past := time.Now().Add(-time.Minute)
	os.Chtimes(msg, past, past)

	srv := &pop3.Server{
		Hostname: "pop.example.org",
		Auth: pop3.AuthenticatorFunc(func(ctx context.Context, c pop3.Credentials) (*pop3.User, error) {
			if c.User != "joe" || !pop3.CheckSecret(c, "s3cret") {
				return nil, pop3.ErrAuthFailed
			}
			return &pop3.User{Name: "joe", Home: home, UID: -1, GID: -1}, nil
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	// A client session (plaintext is allowed: it comes from loopback).
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n') // greeting
	fmt.Fprint(c, "USER joe\r\nPASS s3cret\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		fmt.Println(strings.TrimRight(line, "\r\n"))
	}
	// Output:
	// +OK send PASS
	// +OK 1 messages
	// +OK 1 23
	// +OK 23 octets
	// Subject: hello
	//
	// Hi!
	// .
	// +OK message 1 deleted
	// +OK bye
}

// qmail-pop3d's behaviour, as the qmail-pop3d drop-in serves it after
// checkpassword: one Maildir, the connection already authorized.
func ExampleServer_ServeMailbox() {
	dir, _ := os.MkdirTemp("", "pop3example")
	defer os.RemoveAll(dir)
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
	}
	msg := filepath.Join(dir, "cur", "1700000000.1.example:2,S")
	os.WriteFile(msg, []byte("Subject: hi\n\n.\n"), 0o600)
	past := time.Now().Add(-time.Minute)
	os.Chtimes(msg, past, past)

	mb, err := pop3.OpenMaildir(dir, pop3.MaildirOptions{})
	if err != nil {
		log.Fatal(err)
	}
	server, client := net.Pipe()
	srv := &pop3.Server{Compat: true}
	go srv.ServeMailbox(context.Background(), server, nil, mb)
	go fmt.Fprint(client, "STAT\r\nTOP 1 0\r\nRETR 1\r\nQUIT\r\n")
	sc := bufio.NewScanner(client) // splits at CRLF, dropping it
	for sc.Scan() {
		fmt.Printf("%q\n", sc.Text())
	}
	// Output:
	// "+OK "
	// "+OK 1 15"
	// "+OK "
	// "Subject: hi"
	// ""
	// ""
	// "."
	// "+OK "
	// "Subject: hi"
	// ""
	// ".."
	// ""
	// "."
	// "+OK "
}

// A password file line with a hashed password, as HashPassword makes it
// (Dovecot reads the same form), checked by PasswdFile.
func ExampleHashPassword() {
	hash, err := pop3.HashPassword("s3cret")
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "pop3example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "poppasswd")
	line := "joe:" + hash + ":1000:1000:Joe:/home/joe:/bin/false\n"
	os.WriteFile(path, []byte(line), 0o600)

	users := &pop3.PasswdFile{Path: path}
	u, err := users.Authenticate(context.Background(), pop3.Credentials{User: "joe", Secret: "s3cret", Method: pop3.MethodUser})
	fmt.Println(strings.HasPrefix(hash, "{SHA512-CRYPT}$6$"), u.Name, err)
	_, err = users.Authenticate(context.Background(), pop3.Credentials{User: "joe", Secret: "guess", Method: pop3.MethodUser})
	fmt.Println(errors.Is(err, pop3.ErrAuthFailed))
	// Output:
	// true joe <nil>
	// true
}
