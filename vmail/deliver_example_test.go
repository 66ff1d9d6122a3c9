package vmail_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
)

// A message for a virtual mailbox goes into its Maildir, under the
// domain's hashed directories, with the Return-Path and Delivered-To
// lines. Forwards would go to the Injector (the mail system's queue).
func ExampleDeliverer() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "vmail")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := sqlstore.OpenSQLite(filepath.Join(dir, "vmail.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	m, err := vmail.New(vmail.Options{Store: st, Dir: filepath.Join(dir, "domains"), UID: -1, GID: -1})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.AddDomain(ctx, "example.com"); err != nil {
		log.Fatal(err)
	}
	joe, err := m.AddMailbox(ctx, "joe@example.com", "a long password")
	if err != nil {
		log.Fatal(err)
	}

	d := &vmail.Deliverer{Manager: m}
	msg := "Subject: hello\n\nHi Joe.\n"
	res, err := d.Deliver(ctx, "ann@example.org", "Joe@Example.com", io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Report)
	ents, _ := os.ReadDir(filepath.Join(joe.Maildir(), "new"))
	b, _ := os.ReadFile(filepath.Join(joe.Maildir(), "new", ents[0].Name()))
	fmt.Print(string(b))

	_, err = d.Deliver(ctx, "ann@example.org", "nobody@example.com", io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))))
	fmt.Println(err)
	// Output:
	// did 1+0+0
	// Return-Path: <ann@example.org>
	// Delivered-To: joe@example.com
	// Subject: hello
	//
	// Hi Joe.
	// vmail: deliver: Sorry, no mailbox here by that name. (#5.1.1)
}
