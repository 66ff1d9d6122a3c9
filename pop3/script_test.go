package pop3

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScripts replays the dialogs in testdata/*.script over a loopback
// socket against the recorded session's Maildir (vectorMessages), with the clock
// at vectorNow and an authenticator accepting joe/good, joe/s3cret and
// APOP mrose/tanstaaf. Lines:
//
//	@compat                  qmail mode (default: modern)
//	@host NAME               Server.Hostname (default pop.example.org)
//	@env K=V                 connection variable (default TCPREMOTEIP=127.0.0.1)
//	@apop                    Server.APOP
//	@maxline N               Server.MaxLineLength
//	C: text                  the client sends text and CRLF; {{apop:SECRET}}
//	                         is the APOP digest for the greeting's timestamp
//	R: go-escaped            the client sends these bytes
//	S: line                  one reply line, exact; a final * matches a prefix;
//	                         {{pid}} is the process id
//	EOF                      the server closes the connection
//	CLOSE                    the client closes the connection
//	X: ok|err                ServeConn's result (nil or not)
//	F: +path / F: -path      after the session, the file exists / is gone
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

func runScript(t *testing.T, path string) {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	dir := vectorMaildir(t)
	srv := &Server{Hostname: "pop.example.org", Auth: testAuth(dir), AuthFailDelay: -1, Now: func() time.Time { return vectorNow }}
	env := map[string]string{"TCPREMOTEIP": "127.0.0.1"}
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
		case "@host":
			srv.Hostname = f[1]
		case "@apop":
			srv.APOP = true
		case "@env":
			k, v, _ := strings.Cut(f[1], "=")
			env[k] = v
		case "@maxline":
			srv.MaxLineLength, _ = strconv.Atoi(f[1])
		default:
			t.Fatalf("unknown directive %q", l)
		}
	}
	c := startSession(t, srv, env)
	pid := strconv.Itoa(os.Getpid())
	var greeting string
	for n, l := range lines {
		switch l {
		case "EOF":
			c.expectEOF()
			continue
		case "CLOSE":
			c.c.Close()
			continue
		}
		tag, arg, _ := strings.Cut(l, ": ")
		switch tag {
		case "C":
			if i := strings.Index(arg, "{{apop:"); i >= 0 {
				j := strings.Index(arg, "}}")
				ts := greeting[strings.IndexByte(greeting, '<'):]
				arg = arg[:i] + APOPDigest(ts, arg[i+7:j]) + arg[j+2:]
			}
			c.send(arg + "\r\n")
		case "R":
			u, err := strconv.Unquote(`"` + arg + `"`)
			if err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			c.send(u)
		case "S":
			want := strings.ReplaceAll(arg, "{{pid}}", pid)
			if greeting == "" {
				greeting = c.line()
				if !match(greeting, want) {
					t.Fatalf("greeting %q, want %q", greeting, want)
				}
				continue
			}
			got := c.line()
			if !match(got, want) {
				t.Fatalf("script line %d: got %q, want %q", n+1, got, want)
			}
		case "X":
			err := c.result()
			if (arg == "ok") != (err == nil) {
				t.Fatalf("ServeConn = %v, want %s", err, arg)
			}
		case "F":
			p := filepath.Join(dir, arg[1:])
			if exists(p) != (arg[0] == '+') {
				t.Fatalf("after the session: %s: exists=%v", arg, exists(p))
			}
		default:
			t.Fatalf("bad script line %q", l)
		}
	}
}

func match(got, want string) bool {
	if strings.HasSuffix(want, "*") {
		return strings.HasPrefix(got, strings.TrimSuffix(want, "*"))
	}
	return got == want
}
