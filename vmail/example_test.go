package vmail_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
)

// exampleManager opens a store in a temporary directory and returns a
// Manager over it, and a function that removes it all.
func exampleManager() (*vmail.Manager, func()) {
	dir, err := os.MkdirTemp("", "vmail-example")
	if err != nil {
		log.Fatal(err)
	}
	store, err := sqlstore.OpenSQLite(filepath.Join(dir, "vmail.db"))
	if err != nil {
		log.Fatal(err)
	}
	m, err := vmail.New(vmail.Options{
		Store:  store,
		Dir:    filepath.Join(dir, "domains"),
		UID:    -1,
		GID:    -1,
		Logger: quiet(),
	})
	if err != nil {
		log.Fatal(err)
	}
	return m, func() { store.Close(); os.RemoveAll(dir) }
}

func ExampleNew() {
	store, err := sqlstore.OpenSQLite("/var/lib/qmailkit/vmail.db")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	m, err := vmail.New(vmail.Options{
		Store: store,
		Dir:   "/var/lib/qmailkit/domains", // Dir/example.com/joe/Maildir
		UID:   89, GID: 89,                 // the virtual-mail account, when run as root
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = m
}

func ExampleManager_AddDomain() {
	m, done := exampleManager()
	defer done()
	ctx := context.Background()

	d, err := m.AddDomain(ctx, "Example.COM")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Name, filepath.Base(d.Dir))
	_, err = m.AddDomain(ctx, "example.com")
	fmt.Println(err)
	// Output:
	// example.com example.com
	// vmail: add domain example.com: sqlstore: add domain example.com: vmail: already exists
}

func ExampleManager_AddMailbox() {
	m, done := exampleManager()
	defer done()
	ctx := context.Background()
	if _, err := m.AddDomain(ctx, "example.com"); err != nil {
		log.Fatal(err)
	}

	mb, err := m.AddMailbox(ctx, "Joe@example.com", "a long secret")
	if err != nil {
		log.Fatal(err)
	}
	rel, _ := filepath.Rel(filepath.Dir(filepath.Dir(mb.Dir)), mb.Maildir())
	fmt.Println(mb.Address(), rel)

	u, err := m.Authenticate(ctx, auth.Credentials{Service: auth.ServicePOP3, User: "joe%example.com", Secret: "a long secret"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Name)
	// Output:
	// joe@example.com example.com/joe/Maildir
	// joe@example.com
}

func ExampleManager_Resolve() {
	m, done := exampleManager()
	defer done()
	ctx := context.Background()
	if _, err := m.AddDomain(ctx, "example.com"); err != nil {
		log.Fatal(err)
	}
	if err := m.AddAliasDomain(ctx, "example.net", "example.com"); err != nil {
		log.Fatal(err)
	}
	if _, err := m.AddMailbox(ctx, "joe@example.com", "a long secret"); err != nil {
		log.Fatal(err)
	}
	if err := m.AddAlias(ctx, "sales@example.com", "joe", "bob@example.org"); err != nil {
		log.Fatal(err)
	}

	for _, addr := range []string{"joe@example.net", "sales@example.com", "nobody@example.com"} {
		r, err := m.Resolve(ctx, addr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(addr, r.Kind == vmail.IsMailbox, r.Address, r.Targets)
	}
	// With a catch-all, unknown local parts go to it.
	if err := m.SetCatchAll(ctx, "example.com", "joe"); err != nil {
		log.Fatal(err)
	}
	r, _ := m.Resolve(ctx, "nobody@example.com")
	fmt.Println(r.Kind == vmail.IsCatchAll, r.Targets)
	// Output:
	// joe@example.net true joe@example.com []
	// sales@example.com false sales@example.com [joe@example.com bob@example.org]
	// nobody@example.com false nobody@example.com []
	// true [joe@example.com]
}

func ExampleParseQuota() {
	for _, s := range []string{"50M", "10MB,500C", "NOQUOTA"} {
		q, err := vmail.ParseQuota(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", q.String())
	}
	// Output:
	// "52428800S"
	// "10485760S,500C"
	// ""
}
