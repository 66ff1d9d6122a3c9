package smtpclient

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/smtpclient/scripted"
)

// FuzzDeliverOracle runs deliveries against a server whose reply at each
// step is chosen by the fuzzer, and checks each recipient's result against
// what the server did: a recipient is delivered exactly when its RCPT was
// accepted in a transaction whose final reply was 250; a refusal is
// permanent exactly when the deciding reply was 5xx.
func FuzzDeliverOracle(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0}, uint8(3), false, false)
	f.Add([]byte{0, 0, 1, 0, 2, 0, 0}, uint8(3), true, false)
	f.Add([]byte{0, 0, 0, 3, 3, 0, 0, 0, 0}, uint8(120), true, false)
	f.Add([]byte{0, 0, 0, 4, 0, 0, 1, 0}, uint8(2), false, true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 3}, uint8(1), false, false)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(130), true, false)
	f.Fuzz(func(t *testing.T, choices []byte, n uint8, pipelining, compat bool) {
		// n: recipients (low 7 bits, 1–120) and whether a Pool carries a
		// second delivery over the same connection (high bit).
		nrcpt := int(n&0x7f)%120 + 1
		reuse := n&0x80 != 0 && !compat
		o := &oracle{choices: choices, delivered: map[string]bool{}, last: map[string]string{}}
		srv := scripted.Pipe(t)
		if pipelining {
			srv.SetExt([]string{"PIPELINING"})
		} else {
			srv.SetExt([]string{})
		}
		srv.SetReply(o.reply)
		c := &Client{
			Hostname:    "h",
			Dialer:      srv,
			Routes:      mustRoutes(t, ":192.0.2.1"),
			QmailCompat: compat,
			Timeouts:    Timeouts{Remote: 2 * time.Second, Quit: 100 * time.Millisecond},
		}
		var results []RecipientResult
		var reports [][]byte
		rounds := 1
		if reuse {
			c.Pool = &Pool{}
			rounds = 2
		}
		for round := range rounds {
			var rcpts []string
			for i := range nrcpt {
				rcpts = append(rcpts, "r"+strconv.Itoa(round)+"-"+strconv.Itoa(i)+"@example.net")
			}
			res, _ := c.Deliver(context.Background(), "example.net", "s@x", rcpts, strings.NewReader("Subject: x\n\nbody\n"))
			results = append(results, res.Recipients...)
			reports = append(reports, res.Report())
		}
		if c.Pool != nil {
			c.Pool.Close()
		}
		srv.Settle()
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, r := range results {
			if got, want := r.Err == nil, o.delivered[r.Address]; got != want {
				t.Fatalf("%s: delivered %v, server says %v (err %v)\nreports %q", r.Address, got, want, r.Err, reports)
			}
			if r.Err == nil {
				continue
			}
			// A permanent result needs a 5xx from the server for this
			// recipient or its transaction.
			if IsPermanent(r.Err) && !strings.HasPrefix(o.last[r.Address], "5") && !o.perm {
				t.Fatalf("%s: permanent %v, last reply %q", r.Address, r.Err, o.last[r.Address])
			}
		}
	})
}

// oracle answers the scripted server from the fuzzer's choices and keeps
// what the server did.
type oracle struct {
	mu        sync.Mutex
	choices   []byte
	tx        []string // accepted in the current transaction
	delivered map[string]bool
	last      map[string]string // the last reply concerning each recipient
	perm      bool              // a 5xx to MAIL, DATA or the dot happened
}

func (o *oracle) pick(options ...string) string {
	if len(o.choices) == 0 {
		return options[0]
	}
	c := o.choices[0]
	o.choices = o.choices[1:]
	return options[int(c)%len(options)]
}

func (o *oracle) reply(step string, n int, line string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch step {
	case "GREETING":
		return o.pick("220 hi", "220 hi", "220 hi", "554 no")
	case "MAIL":
		o.tx = nil
		r := o.pick("250 ok", "250 ok", "550 no", "451 later", "421 closing")
		o.perm = o.perm || r[0] == '5'
		return r
	case "RCPT":
		addr := strings.TrimSuffix(strings.TrimPrefix(line, "RCPT TO:<"), ">")
		r := o.pick("250 ok", "550 no", "450 busy", "452 too many", "452 4.2.2 full", "250 ok", "250 ok", "421 closing")
		o.last[addr] = r
		if r[0] == '2' {
			o.tx = append(o.tx, addr)
		}
		return r
	case "DATA":
		r := o.pick("354 go", "354 go", "354 go", "554 no", "451 later")
		o.perm = o.perm || r[0] == '5'
		return r
	case ".":
		r := o.pick("250 ok", "250 ok", "554 rejected", "452 full", "CLOSE")
		if r == "250 ok" {
			for _, a := range o.tx {
				o.delivered[a] = true
			}
		}
		o.perm = o.perm || r[0] == '5'
		o.tx = nil
		return r
	case "RSET":
		o.tx = nil
		return o.pick("250 ok", "250 ok", "250 ok", "CLOSE")
	}
	return ""
}
