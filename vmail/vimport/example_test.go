package vimport_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
	"github.com/qmailkit/qmailkit/vmail/vimport"
)

func ExampleVpopmail() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "vimport-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// A vpopmail installation: one domain, one mailbox, one alias, and
	// the catch-all vadddomain writes.
	vpophome := filepath.Join(tmp, "vpopmail")
	dom := filepath.Join(vpophome, "domains", "example.com")
	os.MkdirAll(filepath.Join(dom, "joe", "Maildir", "new"), 0o750)
	os.MkdirAll(filepath.Join(dom, "joe", "Maildir", "cur"), 0o750)
	os.MkdirAll(filepath.Join(dom, "joe", "Maildir", "tmp"), 0o750)
	os.WriteFile(filepath.Join(dom, "vpasswd"),
		[]byte("joe:$1$abcdefgh$G//4keteveJp0qb8z2DxG/:1:0:Joe User:"+dom+"/joe:NOQUOTA\n"), 0o600)
	os.WriteFile(filepath.Join(dom, ".qmail-info"), []byte("&joe@example.com\n"), 0o600)
	os.WriteFile(filepath.Join(dom, ".qmail-default"), []byte("| "+vpophome+"/bin/vdelivermail '' delete\n"), 0o600)

	// The new store.
	st, err := sqlstore.OpenSQLite(filepath.Join(tmp, "vmail.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	m, err := vmail.New(vmail.Options{Store: st, Dir: filepath.Join(tmp, "domains"), UID: -1, GID: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}

	r, err := vimport.Vpopmail(ctx, m, vpophome)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(r)
	joe, _ := m.Mailbox(ctx, "joe@example.com")
	fmt.Println(joe.Maildir() == dom+"/joe/Maildir")
	// Output:
	// 1 domains, 0 alias domains, 1 mailboxes, 1 aliases, 1 catch-alls imported; 0 skipped, 0 warnings
	// true
}
