package tcprules_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/tcprules"
)

// Compile a qmail-smtpd rules file and look at what it says about a few
// connections, as tcprulescheck would.
func ExampleCompile() {
	rules := `# tcp.smtp
127.:allow,RELAYCLIENT=""
10.0.0.1-9:allow,RELAYCLIENT=""
203.0.113.:deny
=.trusted.example:allow,RELAYCLIENT=""
:allow,DATABYTES="10485760"
`
	data, err := tcprules.Compile(strings.NewReader(rules))
	if err != nil {
		log.Fatal(err)
	}
	db, err := tcprules.OpenBytes(data)
	if err != nil {
		log.Fatal(err)
	}
	host := "mx.trusted.example"
	for _, c := range []struct {
		ip   string
		host *string
	}{{"127.0.0.1", nil}, {"10.0.0.5", nil}, {"203.0.113.9", nil}, {"192.0.2.1", &host}, {"192.0.2.1", nil}} {
		d, err := db.Lookup(c.ip, c.host, nil)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %q deny=%v env=%v\n", c.ip, d.Key, d.Deny, d.Env)
	}
	// Output:
	// 127.0.0.1: "127." deny=false env=[{RELAYCLIENT }]
	// 10.0.0.5: "10.0.0.5" deny=false env=[{RELAYCLIENT }]
	// 203.0.113.9: "203.0.113." deny=true env=[]
	// 192.0.2.1: "=.trusted.example" deny=false env=[{RELAYCLIENT }]
	// 192.0.2.1: "" deny=false env=[{DATABYTES 10485760}]
}

// CompileFile is "tcprules rules.cdb rules.tmp": the new cdb replaces the
// old atomically, and a bad line leaves the old one in place.
func ExampleCompileFile() {
	dir, err := os.MkdirTemp("", "tcprules")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cdb := filepath.Join(dir, "tcp.smtp.cdb")
	if err := tcprules.CompileFile(cdb, cdb+".tmp", strings.NewReader("127.:allow,RELAYCLIENT=\"\"\n")); err != nil {
		log.Fatal(err)
	}
	err = tcprules.CompileFile(cdb, cdb+".tmp", strings.NewReader("10.0.0.1: deny\n"))
	fmt.Println(err)

	db, err := tcprules.Open(cdb)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	d, _ := db.Lookup("127.0.0.1", nil, nil)
	fmt.Print(d.Report())
	// Output:
	// tcprules: line 1: unable to parse this line: 10.0.0.1: deny
	// rule 127.:
	// set environment variable RELAYCLIENT=
	// allow connection
}

// A Listener applies the rules to every connection and hands the server
// its tcpserver environment.
func ExampleListener() {
	dir, err := os.MkdirTemp("", "tcprules")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rules := filepath.Join(dir, "tcp.smtp.cdb")
	if err := tcprules.CompileFile(rules, rules+".tmp", strings.NewReader("127.0.0.1:allow,RELAYCLIENT=\"\"\n:deny\n")); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	l := &tcprules.Listener{Listener: ln, Rules: rules, Limit: 20}
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
	env := c.(interface{ Env() map[string]string }).Env()
	relay, ok := env["RELAYCLIENT"]
	fmt.Printf("PROTO=%s TCPREMOTEIP=%s RELAYCLIENT=%q (set %v)\n", env["PROTO"], env["TCPREMOTEIP"], relay, ok)
	// Output:
	// PROTO=TCP TCPREMOTEIP=127.0.0.1 RELAYCLIENT="" (set true)
}
