package dotqmail_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/maildir"
)

// Deliver one message to one recipient: joe's extension address
// joe-list@example.com, whose .qmail-list file keeps a copy in a Maildir
// and forwards one.
func ExampleDeliverer_Deliver() {
	home, err := os.MkdirTemp("", "joe")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	if _, err := maildir.Create(filepath.Join(home, "Maildir")); err != nil {
		log.Fatal(err)
	}
	err = os.WriteFile(filepath.Join(home, ".qmail-list"), []byte("./Maildir/\n&bob@example.org\n"), 0o644)
	if err != nil {
		log.Fatal(err)
	}

	d := &dotqmail.Deliverer{
		// The queue satisfies Forwarder; here forwards are only printed.
		Forwarder: dotqmail.ForwarderFunc(func(ctx context.Context, sender string, rcpts []string, r io.Reader) (string, error) {
			fmt.Printf("forward from <%s> to %v\n", sender, rcpts)
			return "1234", nil
		}),
	}
	res, err := d.Deliver(context.Background(), dotqmail.Target{
		User: "joe", Home: home, Local: "joe-list", Dash: "-", Ext: "list",
		Domain: "example.com", Sender: "alice@example.net",
	}, strings.NewReader("Subject: hello\n\nHi Joe.\n"))
	if err != nil {
		fmt.Println("failed:", err, "permanent:", dotqmail.ExitCode(err) == 100)
		return
	}
	fmt.Print(res.Report)
	// Output:
	// forward from <alice@example.net> to [bob@example.org]
	// did 1+1+0
	// qp 1234
}

// Parse reads a .qmail file the way qmail-local does.
func ExampleParse() {
	ins, err := dotqmail.Parse(".qmail", []byte("# joe's mail\n./Maildir/\n|preline procmail\nbob@example.org\n"))
	if err != nil {
		log.Fatal(err)
	}
	for _, in := range ins {
		fmt.Printf("line %d: %s\n", in.Line, in)
	}
	// Output:
	// line 2: maildir ./Maildir/
	// line 3: program preline procmail
	// line 4: forward bob@example.org
}

// Candidates lists the files qmail-local tries for an extension, and the
// $DEFAULT each would give.
func ExampleCandidates() {
	for _, c := range dotqmail.Candidates("-", "List-Owner.X") {
		fmt.Printf("%-26s DEFAULT=%q\n", c.Name, c.Default)
	}
	// Output:
	// .qmail-list-owner:x        DEFAULT=""
	// .qmail-list-default        DEFAULT="Owner.X"
	// .qmail-default             DEFAULT="List-Owner.X"
}
