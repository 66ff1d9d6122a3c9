package aliases_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/aliases"
)

// Reading /etc/aliases entries as newaliases compiles them.
func ExampleAliasReader() {
	c := aliases.Controls{DefaultHost: "mx", DefaultDomain: "example.net", PlusDomain: "mx.example.net"}
	src := "# aliases\npostmaster: root\nowner-list: Listmaster\nlist: :include:/lists/x, joe+\n  , \"|/usr/bin/vacation joe\"\n"
	ar := aliases.NewAliasReader(strings.NewReader(src), c)
	for {
		a, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range a.Records() {
			fmt.Printf("%s -> %q\n", r.Key, r.Data)
		}
	}
	// Output:
	// :postmaster@ -> "&root@mx.example.net\x00"
	// ?list@ -> "owner-list@mx.example.net"
	// :owner-list@ -> "&Listmaster@mx.example.net\x00"
	// :list@ -> "!/usr/bin/vacation joe\x00/lists/x.bin\x00&joe+@mx.example.net\x00"
}

// A mail server expanding an alias without running fastforward.
func ExampleDB_Expand() {
	dir, _ := os.MkdirTemp("", "aliases")
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "aliases")
	os.WriteFile(src, []byte("owner-staff: boss\nstaff: ann, bob@example.org, \"|logger got mail\"\n"), 0o644)
	c := aliases.Controls{DefaultHost: "example.net", DefaultDomain: "example.net", PlusDomain: "example.net"}
	cdb := filepath.Join(dir, "aliases.cdb")
	if err := aliases.CompileFile(src, cdb+".tmp", cdb, c); err != nil {
		log.Fatal(err)
	}
	db, err := aliases.Open(cdb)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	plan, err := db.Expand("Staff@example.net", "someone@example.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sender:", plan.Sender)
	fmt.Println("programs:", plan.Programs)
	fmt.Println("targets:", plan.Targets)
	_, err = db.Expand("nobody@example.net", "someone@example.com")
	fmt.Println(err == aliases.ErrNoMailbox)
	// Output:
	// sender: owner-staff@example.net
	// programs: [!logger got mail]
	// targets: [bob@example.org ann@example.net]
	// true
}

// setforward's syntax, compiled and printed back as printforward does.
func ExamplePrintForward() {
	dir, _ := os.MkdirTemp("", "aliases")
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "data.cdb")
	in := "# fastforward's own syntax\nlist@example.net: ?owner@example.net, /lists/x.bin, bob@example.org;\n"
	if err := aliases.CompileForward(strings.NewReader(in), db+".tmp", db); err != nil {
		log.Fatal(err)
	}
	f, _ := os.Open(db)
	defer f.Close()
	if err := aliases.PrintForward(os.Stdout, f); err != nil {
		log.Fatal(err)
	}
	// Output:
	// list@example.net: ?owner@example.net;
	// list@example.net:
	// , /lists/x.bin
	// , &bob@example.org
	// ;
}

// A binary mailing list, as setmaillist writes it and printmaillist
// prints it.
func ExampleWriteMaillist() {
	var bin strings.Builder
	if err := aliases.WriteMaillist(&bin, strings.NewReader("# members\njoe@example.net\n/lists/other.bin\n"), 0); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", bin.String())
	aliases.PrintMaillist(os.Stdout, strings.NewReader(bin.String()), 0)
	// Output:
	// "&joe@example.net\x00/lists/other.bin\x00"
	// &joe@example.net
	// /lists/other.bin
}
