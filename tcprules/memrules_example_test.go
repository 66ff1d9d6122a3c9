package tcprules_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"strings"

	"github.com/qmailkit/qmailkit/tcprules"
)

// A Listener whose rules live in the program, not in a cdb file: parsed
// once from text here, but a RuleSet may as well be built in Go.
func ExampleListener_ruleSet() {
	rules, err := tcprules.Parse(strings.NewReader("127.0.0.1:allow,RELAYCLIENT=\"\"\n:deny\n"))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	l := &tcprules.Listener{Listener: ln, RuleSet: rules}
	defer l.Close()

	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()

	c, err := l.Accept()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	relay, ok := c.(*tcprules.Conn).Env()["RELAYCLIENT"]
	fmt.Printf("RELAYCLIENT=%q (set %v)\n", relay, ok)
	// Output:
	// RELAYCLIENT="" (set true)
}
