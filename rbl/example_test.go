package rbl_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/rbl"
)

// lists is the DNS of a block list and an allow list, for the example; a
// program sets Checker.DNS to net.DefaultResolver, or to a
// [rbl.DNSResolver] for rblsmtpd's exact answers.
type lists map[string][]string

func (l lists) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return l["TXT "+name], nil
}

func (l lists) LookupNetIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range l["A "+name] {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// Decide about clients as "rblsmtpd -a allow.example -b -r zen.example"
// would, and hold a blocked client's session.
func Example() {
	c := &rbl.Checker{
		Sources: []rbl.Source{
			{Base: "allow.example", Allow: true},
			{Base: "zen.example", Permanent: true},
		},
		DNS: lists{
			"TXT 7.2.0.192.zen.example":   {"Listed: see https://zen.example/192.0.2.7"},
			"TXT 8.2.0.192.zen.example":   {"Listed too"},
			"A 8.2.0.192.allow.example":   {"127.0.0.2"},
			"TXT 9.2.0.192.other.example": {"never asked"},
		},
	}
	for _, ip := range []string{"192.0.2.7", "192.0.2.8", "192.0.2.9"} {
		res := c.Check(context.Background(), ip)
		if !res.Blocked() {
			fmt.Printf("%s: run qmail-smtpd\n", ip)
			continue
		}
		fmt.Printf("%s: %s\n", ip, res.Message())
	}

	// The blocked client's conversation (here over a string and a buffer;
	// a server passes its net.Conn twice).
	s := &rbl.Session{Message: c.Check(context.Background(), "192.0.2.7").Message(), Timeout: time.Minute}
	client := "EHLO mx.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nQUIT\r\n"
	var replies strings.Builder
	if err := s.Serve(context.Background(), strings.NewReader(client), &replies); err != nil {
		fmt.Println(err)
	}
	fmt.Print(strings.ReplaceAll(replies.String(), "\r\n", "\n"))
	// Output:
	// 192.0.2.7: 553 Listed: see https://zen.example/192.0.2.7
	// 192.0.2.8: run qmail-smtpd
	// 192.0.2.9: run qmail-smtpd
	// 220 rblsmtpd.local
	// 250 rblsmtpd.local
	// 250 rblsmtpd.local
	// 553 Listed: see https://zen.example/192.0.2.7
	// 221 rblsmtpd.local
}

// $RBLSMTPD, set by tcpserver's rules, decides before any list.
func ExampleOverride() {
	for _, v := range []string{"", "-Blocked: see https://example.org/policy", "Slow down"} {
		fmt.Printf("%q: %q\n", v, rbl.Override(v).Message())
	}
	// Output:
	// "": ""
	// "-Blocked: see https://example.org/policy": "553 Blocked: see https://example.org/policy"
	// "Slow down": "451 Slow down"
}
