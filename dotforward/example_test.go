package dotforward_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/qmailkit/qmailkit/dotforward"
)

// Read a .forward file: what dot-forward would do with each address.
func ExampleConfig_Parse() {
	c := dotforward.Config{User: "joe", Host: "example.net",
		DefaultHost: "example.net", DefaultDomain: "example.net", PlusDomain: "example.net"}
	file := "# keep a copy, forward one, and answer\n\\joe, Bob <bob@example.org>\n\"|vacation joe\", carol\n"
	err := c.Parse(strings.NewReader(file), func(e dotforward.Entry) error {
		fmt.Println(e.Line, e.Kind, e.Arg)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2 forward bob@example.org
	// 2 direct joe
	// 3 forward carol@example.net
	// 3 program vacation joe
}

// Act on it: forward, and tell qmail-local (exit 0) to deliver joe's copy
// too.
func ExampleDeliverer_Deliver() {
	dir, err := os.MkdirTemp("", "joe")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(dir+"/.forward", []byte("\\joe, bob@example.org\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	d := &dotforward.Deliverer{
		Config: dotforward.Config{User: "joe", Host: "example.net",
			DefaultHost: "example.net", DefaultDomain: "example.net", PlusDomain: "example.net"},
		Sender: "alice@example.com",
		DTLine: "Delivered-To: joe@example.net\n",
		Dir:    dir,
		// dotqmail.QueueProgram runs qmail-queue; here the forward is
		// only printed.
		Forwarder: forwarderFunc(func(sender string, rcpts []string, msg string) {
			fmt.Printf("from <%s> to %v:\n%s", sender, rcpts, msg)
		}),
	}
	res, err := d.Deliver(context.Background(), []string{".forward"}, strings.NewReader("Subject: hi\n\nhello\n"))
	fmt.Println("exit", dotforward.ExitCode(res, err))
	// Output:
	// from <alice@example.com> to [bob@example.org]:
	// Delivered-To: joe@example.net
	// Subject: hi
	//
	// hello
	// exit 0
}

type forwarderFunc func(sender string, rcpts []string, msg string)

func (f forwarderFunc) Forward(ctx context.Context, sender string, rcpts []string, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	f(sender, rcpts, string(b))
	return "1", nil
}
