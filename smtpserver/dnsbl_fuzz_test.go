package smtpserver

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// scriptResolver answers DNSBL queries from a fuzzed script: for each
// query, one byte chooses a failure, no answer, or records, which follow
// (a count, then for TXT a length and bytes, for A four bytes). It records
// the names asked.
type scriptResolver struct {
	script []byte
	names  []string
}

var errScript = errors.New("script: lookup failed")

func (r *scriptResolver) next() byte {
	if len(r.script) == 0 {
		return 0
	}
	b := r.script[0]
	r.script = r.script[1:]
	return b
}

func (r *scriptResolver) take(n int) []byte {
	n = min(n, len(r.script))
	b := r.script[:n]
	r.script = r.script[n:]
	return b
}

func (r *scriptResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	r.names = append(r.names, "TXT "+name)
	switch r.next() % 3 {
	case 0:
		return nil, errScript
	case 1:
		return nil, nil
	}
	var txts []string
	for range r.next() % 4 {
		txts = append(txts, string(r.take(int(r.next()))))
	}
	return txts, nil
}

func (r *scriptResolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	r.names = append(r.names, "A "+name)
	switch r.next() % 3 {
	case 0:
		return nil, errScript
	case 1:
		return nil, nil
	}
	var addrs []netip.Addr
	for range r.next() % 4 {
		var a [4]byte
		copy(a[:], r.take(4))
		addrs = append(addrs, netip.AddrFrom4(a))
	}
	return addrs, nil
}

// rblsmtpdDecide is rblsmtpd.c's decision transcribed: rbl() and
// antirbl() in option order, each doing nothing once decided; any lookup
// failure sets flagmustnotbounce, which forces 451.
func rblsmtpdDecide(ctx context.Context, d *DNSBL, res Resolver, ip netip.Addr) (blocked bool, code int, text string) {
	decision := 0 // 1 accept, 2 block 451, 3 block 553
	mustNotBounce := false
	for _, r := range d.Rules {
		if decision != 0 {
			break
		}
		name := ReverseName(ip, r.Zone)
		if r.Allow {
			addrs, err := res.LookupA(ctx, name)
			if err != nil {
				mustNotBounce = true
				if !d.FailClosed {
					decision = 1
				}
				continue
			}
			if len(addrs) > 0 {
				decision = 1
			}
			continue
		}
		txts, err := res.LookupTXT(ctx, name)
		if err != nil {
			mustNotBounce = true
			if d.FailClosed {
				text, decision = "temporary RBL lookup error", 2
			}
			continue
		}
		if text = strings.Join(txts, ""); text != "" {
			decision = 2
			if d.Permanent {
				decision = 3
			}
		}
	}
	if decision < 2 {
		return false, 0, ""
	}
	if mustNotBounce || decision == 2 {
		return true, 451, text
	}
	return true, 553, text
}

// FuzzDNSBL: whatever the lists answer (failures, nothing, many or long or
// binary TXT strings, A records), the decision is rblsmtpd's, and the
// reply line a blocked client gets is one line of printable bytes with at
// most 200 bytes of text.
func FuzzDNSBL(f *testing.F) {
	for _, s := range []struct {
		ip     []byte
		zones  string
		flags  byte
		env    string
		script []byte
	}{
		{[]byte{192, 0, 2, 1}, "zen.example", 0, "", []byte{2, 1, 5, 'l', 'i', 's', 't', 'd'}},
		{[]byte{192, 0, 2, 1}, "+white.example,zen.example", 1, "", []byte{1, 2, 2, 3, 'a', 'b', 'c', 4, 'd', 'e', 'f', 'g'}},
		{[]byte{192, 0, 2, 1}, "+white.example,zen.example", 2, "", []byte{0, 2, 1, 1, 'x'}},
		{[]byte{192, 0, 2, 1}, "a.example,b.example", 3, "", []byte{0, 2, 1, 3, 'b', 'a', 'd'}},
		{[]byte{192, 0, 2, 1}, "a.example", 2, "", []byte{0}},
		{bytes.Repeat([]byte{0x20}, 16), "+v6.example,zen.example", 0, "", append([]byte{2, 1, 1, 2, 3, 4, 2, 1, 255}, strings.Repeat("\r\n\x00\xff", 64)...)},
		{[]byte{192, 0, 2, 1}, "zen.example", 4, "-go away", nil},
		{[]byte{192, 0, 2, 1}, "zen.example", 4, "", nil},
		{[]byte{192, 0, 2, 1}, "zen.example", 4, "slow\r\ndown\x00", nil},
		{nil, "zen.example", 0, "", []byte{2, 1, 3, 'a', 'b', 'c'}},
	} {
		f.Add(s.ip, s.zones, s.flags, s.env, s.script)
	}
	f.Fuzz(func(t *testing.T, ipb []byte, zones string, flags byte, envVal string, script []byte) {
		ip, _ := netip.AddrFromSlice(ipb)
		d := &DNSBL{Permanent: flags&1 != 0, FailClosed: flags&2 != 0}
		for _, z := range strings.Split(zones, ",") {
			allow := strings.HasPrefix(z, "+")
			d.Rules = append(d.Rules, DNSBLRule{Zone: strings.TrimPrefix(z, "+"), Allow: allow})
		}
		env := map[string]string{}
		if flags&4 != 0 {
			env["RBLSMTPD"] = envVal
		}
		got := &scriptResolver{script: script}
		want := &scriptResolver{script: script}
		d.Resolver = got
		blocked, code, text := d.Decide(t.Context(), env, ip)

		var wb bool
		var wc int
		var wt string
		switch v, ok := env["RBLSMTPD"]; {
		case ok && v == "":
		case ok && v[0] == '-':
			wb, wc, wt = true, 553, v[1:]
		case ok:
			wb, wc, wt = true, 451, v
		case ip.IsValid():
			wb, wc, wt = rblsmtpdDecide(t.Context(), d, want, ip)
		}
		if blocked != wb || code != wc || text != wt {
			t.Fatalf("Decide = %v %d %q, rblsmtpd %v %d %q", blocked, code, text, wb, wc, wt)
		}
		if strings.Join(got.names, "\n") != strings.Join(want.names, "\n") {
			t.Fatalf("queries %q, rblsmtpd's %q", got.names, want.names)
		}
		if !blocked {
			return
		}
		rt := rblText(text)
		if len(rt) > 200 || len(rt) != min(len(text), 200) {
			t.Fatalf("reply text of %d bytes from %d", len(rt), len(text))
		}
		for _, compat := range []bool{true, false} {
			r := Reply{Code: code, Text: rt}
			if !compat {
				r.Enhanced = "4.7.1"
			}
			line := r.format(!compat)
			body, ok := bytes.CutSuffix(line, []byte("\r\n"))
			if !ok || bytes.ContainsAny(body, "\r\n") {
				t.Fatalf("reply %q is not one line", line)
			}
			for _, c := range body {
				if c < 32 || c > 126 {
					t.Fatalf("reply %q holds byte %#x", line, c)
				}
			}
		}
	})
}
