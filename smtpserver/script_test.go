package smtpserver

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScripts replays the dialogs in testdata/*.script over a loopback
// socket. Directives:
//
//	@compat / @lmtp                 mode (default: modern)
//	@env K=V                        connection variable (V may be Go-quoted)
//	@rcpthosts d1 d2 ...            control/rcpthosts (default: open relay)
//	@badmailfrom a1 a2 ...          control/badmailfrom
//	@databytes N                    control/databytes
//	@maxrcpt N / @maxerrors N       limits
//	C: text                         client sends text CRLF
//	R: go-escaped bytes             client sends raw bytes
//	S: line                         server line (a trailing * matches a prefix)
//	EOF                             server closes the connection
//	Q: go-escaped bytes             the next queued message's data
//	V: from to1 to2 ...             its envelope ("<>" = empty)
//	N: n                            number of messages queued in all
//	X: ok|err                       ServeConn's result
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.script")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".script"), func(t *testing.T) {
			t.Parallel()
			runScript(t, f)
		})
	}
}

func unquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
	if err != nil {
		t.Fatalf("bad escape %q: %v", s, err)
	}
	return u
}

func runScript(t *testing.T, path string) {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	k := &sink{id: "15604"}
	srv := compatServer(k)
	srv.Compat = false
	env := qmailEnv()
	var lines []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !strings.HasPrefix(l, "@") {
			lines = append(lines, l)
			continue
		}
		f := strings.Fields(l)
		switch f[0] {
		case "@compat":
			srv.Compat = true
		case "@lmtp":
			srv.LMTP = true
		case "@env":
			kv := strings.TrimPrefix(l, "@env ")
			key, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(v, `"`) {
				v = unquote(t, strings.Trim(v, `"`))
			}
			env[key] = v
		case "@unsetenv":
			delete(env, f[1])
		case "@rcpthosts":
			srv.OpenRelay = false
			srv.RcptHosts = HostList(f[1:], nil)
		case "@norcpthosts":
			srv.OpenRelay = false
		case "@badmailfrom":
			srv.BadMailFrom = AddressList(f[1:])
		case "@databytes":
			n, _ := strconv.ParseInt(f[1], 10, 64)
			srv.MaxMessageBytes = n
		case "@maxrcpt":
			srv.MaxRecipients, _ = strconv.Atoi(f[1])
		case "@maxerrors":
			srv.MaxErrors, _ = strconv.Atoi(f[1])
		case "@maxline":
			srv.MaxLineLength, _ = strconv.Atoi(f[1])
		default:
			t.Fatalf("unknown directive %q", l)
		}
	}
	c := start(t, srv, env)
	next := 0
	for _, l := range lines {
		tag, arg, _ := strings.Cut(l, ": ")
		if l == "EOF" {
			c.expectEOF()
			continue
		}
		switch tag {
		case "C":
			c.send(arg + "\r\n")
		case "R":
			c.send(unquote(t, arg))
		case "S":
			c.expect(arg)
		case "Q", "V":
			if err := waitFor(func() bool { return len(k.messages()) > next }); err != nil {
				t.Fatalf("line %q: no message %d queued", l, next+1)
			}
			m := k.messages()[next]
			if tag == "Q" {
				if want := unquote(t, arg); m.data != want {
					t.Fatalf("message %d:\n got %q\nwant %q", next+1, m.data, want)
				}
				continue
			}
			from := m.from
			if from == "" {
				from = "<>"
			}
			if got := strings.Join(append([]string{from}, m.to...), " "); got != arg {
				t.Fatalf("envelope %d: got %q want %q", next+1, got, arg)
			}
			next++
		case "N":
			c.c.Close()
			c.wait()
			if got := strconv.Itoa(len(k.messages())); got != arg {
				t.Fatalf("%s messages queued, want %s", got, arg)
			}
		case "X":
			c.c.(*net.TCPConn).CloseWrite() // end of input
			err := c.wait()
			if (err == nil) != (arg == "ok") {
				t.Fatalf("ServeConn = %v, want %s", err, arg)
			}
		default:
			t.Fatalf("bad script line %q", l)
		}
	}
}

func waitFor(cond func() bool) error {
	for i := 0; i < 500; i++ {
		if cond() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return os.ErrDeadlineExceeded
}
