package mta_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/mta"
)

// Make a home with a demo mailbox, open it, and see how it routes mail.
func Example() {
	dir, err := os.MkdirTemp("", "system-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	home := filepath.Join(dir, "qmail")
	demo, created, err := mta.Init(home, mta.InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(demo.Address(), demo.Password, created)

	sys, err := mta.Open(home, mta.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Close()
	// sys.Serve(ctx, servers, listeners) would serve; here, just routing.
	r, _ := mta.Routing(sys.Home)
	for _, rcpt := range []string{"demo@example.test", "joe@example.org"} {
		addr, remote := r.Route(rcpt)
		fmt.Println(addr, remote)
	}
	// Output:
	// demo@example.test secret true
	// demo@example.test false
	// joe@example.org true
}
