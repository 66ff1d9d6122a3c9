package pop3

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func script(t *testing.T, body string) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	p := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// A checkpassword stand-in: joe/good succeeds (HOME is $1, then it execs
// the rest), anything else exits 1, user "temp" exits 111.
const standIn = `
{ read -r user; read -r pass; read -r ts; } <<EOF
$(tr '\0' '\n' <&3)
EOF
[ "$user" = temp ] && exit 111
[ "$user" = misuse ] && exit 2
[ "$user" = joe ] && [ "$pass" = good ] || exit 1
home=$1; shift
USER=$user HOME=$home SHELL=/bin/sh; export USER HOME SHELL
cd "$home" || exit 111
exec "$@"
`

func TestCheckpasswordAuthenticate(t *testing.T) {
	home := t.TempDir()
	cp := &Checkpassword{Command: []string{script(t, standIn), home}}
	u, err := cp.Authenticate(t.Context(), Credentials{User: "joe", Secret: "good", Challenge: "<1.2@h>"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "joe" || u.Home != home || u.Shell != "/bin/sh" || u.UID != os.Getuid() || u.GID != os.Getgid() {
		t.Fatalf("user %+v", u)
	}
	tests := []struct {
		user, pass string
		authFailed bool
	}{
		{"joe", "bad", true},
		{"temp", "x", false},
		{"misuse", "x", false},
	}
	for _, tt := range tests {
		_, err := cp.Authenticate(t.Context(), Credentials{User: tt.user, Secret: tt.pass})
		if err == nil || errors.Is(err, ErrAuthFailed) != tt.authFailed {
			t.Errorf("%s/%s: %v", tt.user, tt.pass, err)
		}
	}
	// A checkpassword that cannot be run is a temporary failure.
	missing := &Checkpassword{Command: []string{filepath.Join(home, "nonexistent")}}
	if _, err := missing.Authenticate(t.Context(), Credentials{User: "joe", Secret: "good"}); err == nil || errors.Is(err, ErrAuthFailed) {
		t.Fatalf("missing program: %v", err)
	}
}

// The handoff is qmail-popup's: fd 3 carries user\0pass\0timestamp\0,
// fd 0 and 1 are the connection, and the exit status decides the reply.
func TestCheckpasswordHandoff(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fd3")
	prog := script(t, `cat <&3 >"$FD3"
case "$1" in
ok) printf '+OK \r\n'; read -r line; printf '+OK \r\n'; exit 0;;
bad) exit 1;;
crash) kill -9 $$;;
esac
`)
	for _, tt := range []struct{ mode, reply string }{
		{"ok", "+OK "},
		{"bad", "-ERR authorization failed"},
		{"crash", "-ERR aack, child crashed"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			srv := &Server{Compat: true, Hostname: "pop.example.org", Now: func() time.Time { return vectorNow },
				Handoff: &Checkpassword{Command: []string{prog, tt.mode}, Env: []string{"FD3=" + out}}}
			c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
			greeting := c.line()
			ts := "<" + strconv.Itoa(os.Getpid()) + ".1795300720@pop.example.org>"
			if greeting != "+OK "+ts {
				t.Fatalf("greeting %q", greeting)
			}
			c.cmd("USER joe", "+OK ")
			c.cmd("PASS good", tt.reply)
			if tt.mode == "ok" {
				c.cmd("QUIT", "+OK ")
			}
			c.expectEOF()
			if err := c.result(); !errors.Is(err, ErrLoginEnded) {
				t.Fatalf("ServeConn = %v", err)
			}
			got, _ := os.ReadFile(out)
			if want := "joe\x00good\x00" + ts + "\x00"; string(got) != want {
				t.Fatalf("fd 3: %q, want %q", got, want)
			}
		})
	}
}

// APOP through the handoff: fd 3 carries the digest.
func TestCheckpasswordHandoffAPOP(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fd3")
	prog := script(t, `cat <&3 >"$FD3"; exit 1`)
	srv := &Server{Compat: true, Hostname: "h", Handoff: &Checkpassword{Command: []string{prog}, Env: []string{"FD3=" + out}}}
	c := startSession(t, srv, nil)
	greeting := c.line()
	ts := greeting[strings.IndexByte(greeting, '<'):]
	c.cmd("APOP mrose c4c9334bac560ecc979e58001b3e22fb", "-ERR authorization failed")
	got, _ := os.ReadFile(out)
	if want := "mrose\x00c4c9334bac560ecc979e58001b3e22fb\x00" + ts + "\x00"; string(got) != want {
		t.Fatalf("fd 3: %q, want %q", got, want)
	}
}
