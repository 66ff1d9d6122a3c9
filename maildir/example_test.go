package maildir_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
)

// exampleDir makes a Maildir in a temporary directory.
func exampleDir() (maildir.Dir, func()) {
	tmp, err := os.MkdirTemp("", "maildir-example")
	if err != nil {
		log.Fatal(err)
	}
	d, err := maildir.Create(filepath.Join(tmp, "Maildir"))
	if err != nil {
		log.Fatal(err)
	}
	return d, func() { os.RemoveAll(tmp) }
}

// Delivering a message: the file appears in new/ under a unique name.
func ExampleDeliverer_Deliver() {
	d, cleanup := exampleDir()
	defer cleanup()

	// One Deliverer for the whole program; here with a fixed clock, host
	// and random source so that the name is predictable.
	dl := &maildir.Deliverer{
		Host:    "mx1.example.com",
		Pid:     4321,
		Now:     func() time.Time { return time.Unix(1700000000, 123456000) },
		Rand:    strings.NewReader("\x01\x23\x45\x67\x89\xab\xcd\xef"),
		SizeTag: true,
	}
	msg := "Return-Path: <a@example.org>\nSubject: hi\n\nhello\n"
	name, err := dl.Deliver(context.Background(), d, strings.NewReader(msg))
	if err != nil {
		log.Fatal(err) // a *maildir.DeliveryError, temporary unless over a permanent quota
	}
	fmt.Println(name)
	b, _ := os.ReadFile(filepath.Join(string(d), "new", name))
	fmt.Print(string(b))
	// Output:
	// 1700000000.M123456P4321Q1R0123456789abcdef.mx1.example.com,S=48
	// Return-Path: <a@example.org>
	// Subject: hi
	//
	// hello
}

// Listing a Maildir as a POP3 server does: new/ and cur/ by delivery time,
// with sizes and unique names (the UIDLs).
func ExampleDir_List() {
	d, cleanup := exampleDir()
	defer cleanup()
	for i, msg := range []string{"first\n", "second message\n"} {
		name, err := d.Deliver(context.Background(), strings.NewReader(msg))
		if err != nil {
			log.Fatal(err)
		}
		// Give the files distinct delivery times for a stable order.
		mt := time.Unix(1700000000+int64(i), 0)
		os.Chtimes(filepath.Join(string(d), "new", name), mt, mt)
	}
	msgs, err := d.List()
	if err != nil {
		log.Fatal(err)
	}
	for i, m := range msgs {
		fmt.Println(i+1, m.Subdir, m.Size, m.ModTime.UTC().Format(time.DateTime), m.Unique() == m.Name)
	}
	// Output:
	// 1 new 6 2023-11-14 22:13:20 true
	// 2 new 15 2023-11-14 22:13:21 true
}

// Flagging: the first SetFlags moves a message from new/ to cur/; flags
// are kept sorted, unknown ones preserved.
func ExampleDir_SetFlags() {
	d, cleanup := exampleDir()
	defer cleanup()
	os.WriteFile(filepath.Join(string(d), "new", "1700000000.4321.mx1"), []byte("x\n"), 0o600)
	msgs, err := d.List()
	if err != nil {
		log.Fatal(err)
	}
	m := msgs[0]
	m, err = d.SetFlags(m, m.Flags().Add(maildir.Seen))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Path())
	m, err = d.SetFlags(m, m.Flags().Add(maildir.Replied+maildir.Flagged))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Path(), m.Flags().Has(maildir.Seen))
	m, err = d.SetFlags(m, m.Flags().Remove(maildir.Flagged))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Path(), m.Unique())
	// Output:
	// cur/1700000000.4321.mx1:2,S
	// cur/1700000000.4321.mx1:2,FRS true
	// cur/1700000000.4321.mx1:2,RS 1700000000.4321.mx1
}

// Parsing a file name: unique name, info, flags and Maildir++ size.
func ExampleParseName() {
	n, err := maildir.ParseName("1700000000.M1P2Q3R0123456789abcdef.mx1,S=1234:2,SFa,x")
	if err != nil {
		log.Fatal(err)
	}
	size, ok := n.Size()
	fmt.Println(n.Unique)
	fmt.Println(n.Info, n.Flags(), size, ok)
	fmt.Println(n.WithFlags(n.Flags().Add(maildir.Trashed)))
	// Output:
	// 1700000000.M1P2Q3R0123456789abcdef.mx1,S=1234
	// 2,SFa,x FSa 1234 true
	// 1700000000.M1P2Q3R0123456789abcdef.mx1,S=1234:2,FSTa,x
}

// A Maildir++ quota: a delivery over it fails with ErrQuota, temporary
// (4.2.2) unless QuotaPermanent.
func ExampleQuotaError() {
	d, cleanup := exampleDir()
	defer cleanup()
	dl := &maildir.Deliverer{Quota: maildir.Quota{Bytes: 100}}
	_, err := dl.Deliver(context.Background(), d, strings.NewReader(strings.Repeat("x", 60)))
	fmt.Println(err)
	_, err = dl.Deliver(context.Background(), d, strings.NewReader(strings.Repeat("x", 60)))
	var qe *maildir.QuotaError
	if errors.Is(err, maildir.ErrQuota) && errors.As(err, &qe) {
		fmt.Println(qe.Enhanced(), qe.Permanent())
	}
	// The refusal recalculated maildirsize (it had two delta lines).
	b, _ := os.ReadFile(filepath.Join(string(d), "maildirsize"))
	fmt.Printf("%q\n", b)
	// Output:
	// <nil>
	// 4.2.2 false
	// "100S\n60 1\n"
}

// Cleaning tmp/ as qmail-pop3d does at the start of a session: files
// unaccessed for more than 36 hours are leftovers of abandoned deliveries.
func ExampleDir_Clean() {
	d, cleanup := exampleDir()
	defer cleanup()
	now := time.Unix(1700000000, 0)
	for name, age := range map[string]time.Duration{"old": 37 * time.Hour, "recent": time.Hour} {
		p := filepath.Join(string(d), "tmp", name)
		os.WriteFile(p, nil, 0o600)
		os.Chtimes(p, now.Add(-age), now.Add(-age))
	}
	n, err := d.Clean(now)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("removed", n)
	// Output:
	// removed 1
}

// Making a Maildir ready before the first delivery, as a program receiving
// mail does at start-up: missing parents are made, an existing Maildir and
// its mail are kept, and calling it again changes nothing.
func ExampleEnsure() {
	tmp, err := os.MkdirTemp("", "maildir-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	path := filepath.Join(tmp, "mail", "joe", "Maildir")
	for range 2 {
		d, err := maildir.Ensure(path)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := d.Deliver(context.Background(), strings.NewReader("Subject: hi\n\nhello\n")); err != nil {
			log.Fatal(err)
		}
	}
	msgs, err := maildir.Dir(path).List()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(msgs), "messages")
	// Output:
	// 2 messages
}
