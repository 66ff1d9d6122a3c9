package assign_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/assign"
)

// Compile an assign file into users/cdb, as qmail-newu does, and look
// addresses up in it.
func Example_compile() {
	dir, err := os.MkdirTemp("", "assign")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cdbPath := filepath.Join(dir, "cdb")

	err = assign.Compile(cdbPath, strings.NewReader(""+
		"=joe:joe:503:78:/home/joe:::\n"+
		"+joe-:joe:503:78:/home/joe:-::\n"+
		"+list-:joe:503:78:/home/joe:-:list-:\n"+
		"+:alias:7790:2108:/var/qmail/alias:-::\n"+
		".\n"))
	if err != nil {
		log.Fatal(err)
	}

	db, err := assign.Open(cdbPath)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for _, local := range []string{"JOE", "joe-Direct", "list-foo", "bill"} {
		u, err := db.Lookup(local)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-10s -> %s uid %d %s/.qmail%s%s (%v)\n", local, u.Name, u.UID, u.Home, u.Dash, u.Ext, u.Match)
	}
	// Output:
	// JOE        -> joe uid 503 /home/joe/.qmail (exact)
	// joe-Direct -> joe uid 503 /home/joe/.qmail-Direct (wildcard)
	// list-foo   -> joe uid 503 /home/joe/.qmail-list-foo (wildcard)
	// bill       -> alias uid 7790 /var/qmail/alias/.qmail-bill (wildcard)
}

// Resolve addresses as qmail-lspawn does: users/cdb first (here there is
// none), then the password database with qmail-getpw's rules.
func ExampleUsers_Lookup() {
	dir, err := os.MkdirTemp("", "assign")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte(""+
		"root:x:0:0:root:/root:/bin/sh\n"+
		"joe:x:503:78:Joe:/home/joe:/bin/sh\n"+
		"alias:x:7790:2108::/var/qmail/alias:/bin/true\n"), 0o644)

	users := &assign.Users{
		CDB:    filepath.Join(dir, "cdb"), // absent: straight to the password database
		Passwd: assign.PasswdFile{Path: passwd},
		// Who owns each home directory; nil would stat the real ones.
		HomeOwner: func(home string) (int, error) {
			if home == "/home/joe" {
				return 503, nil
			}
			return 0, os.ErrNotExist
		},
	}
	defer users.Close()
	for _, local := range []string{"Joe-Lists", "root"} {
		u, err := users.Lookup(context.Background(), local)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s -> user %s dash %q ext %q (%v)\n", local, u.Name, u.Dash, u.Ext, u.Match)
	}
	// Output:
	// Joe-Lists -> user joe dash "-" ext "Lists" (passwd)
	// root -> user alias dash "-" ext "root" (alias)
}

// Turn a password file into an assign file, as qmail-pw2u does.
func ExamplePw2u_Convert() {
	p := &assign.Pw2u{Home: assign.HomeIgnore}
	err := p.Convert(os.Stdout, strings.NewReader(""+
		"root:x:0:0:root:/root:/bin/sh\n"+
		"joe:x:503:78:Joe:/home/joe:/bin/sh\n"+
		"alias:x:7790:2108::/var/qmail/alias:/bin/true\n"))
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// =joe:joe:503:78:/home/joe:::
	// +joe-:joe:503:78:/home/joe:-::
	// +:alias:7790:2108:/var/qmail/alias:-::
	// =alias:alias:7790:2108:/var/qmail/alias:::
	// +alias-:alias:7790:2108:/var/qmail/alias:-::
	// .
}
