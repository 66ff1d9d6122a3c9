package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/vmail"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds vchkpw, qmail-popup and qmail-pop3d once, into a
// directory anyone may read (vchkpw drops root).
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "vchkpwbin"); buildErr != nil {
			return
		}
		os.Chmod(binDir, 0o755)
		for _, p := range []string{".", "../qmail-popup", "../qmail-pop3d"} {
			name := filepath.Base(p)
			if p == "." {
				name = "vchkpw"
			}
			if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), p).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", p, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// fixture is a qmail home with virtual mailboxes in example.com: joe,
// nopop (NoPOP), noimap (NoIMAP), each with the password "password-1".
// Run as root, queue/ belongs to uid 65534, the account vchkpw becomes.
type fixture struct {
	home string
	dirs map[string]string // mailbox name → USERDIR
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root, err := os.MkdirTemp("", "vchkpw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	home := filepath.Join(root, "home")
	if err := os.MkdirAll(filepath.Join(home, "queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		os.Chown(filepath.Join(home, "queue"), 65534, 65534)
	}
	ctx := t.Context()
	m, err := mta.OpenVirtual(ctx, home, vmail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Store().Close()
	if _, err := m.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{home: home, dirs: map[string]string{}}
	for name, flags := range map[string]vmail.Flags{"joe": 0, "nopop": vmail.NoPOP, "noimap": vmail.NoIMAP} {
		mb, err := m.AddMailbox(ctx, name+"@example.com", "password-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetFlags(ctx, mb.Address(), flags); err != nil {
			t.Fatal(err)
		}
		f.dirs[name] = mb.Dir
	}
	return f
}

// run runs vchkpw with fd 3 input and environment env (added to a
// minimal one), and returns its exit code, standard output and duration.
func (f *fixture) run(t *testing.T, fd3 string, env []string, args ...string) (int, string, time.Duration) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.Write([]byte(fd3)); w.Close() }()
	cmd := exec.Command(filepath.Join(binaries(t), "vchkpw"), append([]string{"-home", f.home}, args...)...)
	cmd.ExtraFiles = []*os.File{r}
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	cmd.Run()
	r.Close()
	d := time.Since(start)
	if testing.Verbose() && errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return cmd.ProcessState.ExitCode(), out.String(), d
}

var show = []string{"/bin/sh", "-c", `echo "$USER $HOME $SHELL $VPOPUSER $(pwd -P) $(id -u)"`}

func TestVchkpw(t *testing.T) {
	f := newFixture(t)
	joe := f.dirs["joe"]
	uid := os.Getuid()
	if uid == 0 {
		uid = 65534
	}
	ok := func(vpopuser string) string {
		return fmt.Sprintf("joe %s NOLOGIN %s %s %d\n", joe, vpopuser, joe, uid)
	}
	pop := []string{"TCPLOCALPORT=110", "TCPREMOTEIP=127.0.0.1"}
	tests := []struct {
		name string
		fd3  string
		env  []string
		args []string
		code int
		out  string
	}{
		{"address", "joe@example.com\x00password-1\x00<1.2@h>\x00", pop, show, 0, ok("joe@example.com")},
		{"percent and case", "JOE%Example.com\x00password-1\x00<1.2@h>\x00", pop, show, 0, ok("joe%example.com")},
		{"slash", "joe/example.com\x00password-1\x00\x00", pop, show, 0, ok("joe/example.com")},
		{"default domain", "joe\x00password-1\x00\x00", append(pop, "VPOPMAIL_DOMAIN=example.com"), show, 0, ok("joe")},
		{"no domain", "joe\x00password-1\x00\x00", pop, show, 1, ""},
		{"wrong password", "joe@example.com\x00password-2\x00\x00", pop, show, 1, ""},
		{"unknown", "ann@example.com\x00password-1\x00\x00", pop, show, 1, ""},
		{"unknown domain", "joe@example.net\x00password-1\x00\x00", pop, show, 1, ""},
		{"NoPOP on pop3", "nopop@example.com\x00password-1\x00\x00", pop, show, 1, ""},
		{"NoPOP on smtp", "nopop@example.com\x00password-1\x00\x00", []string{"TCPLOCALPORT=587"}, show, 0, fmt.Sprintf("nopop %s NOLOGIN nopop@example.com %s %d\n", f.dirs["nopop"], f.dirs["nopop"], uid)},
		{"NoPOP by SMTP's /bin/true", "nopop@example.com\x00password-1\x00\x00", nil, []string{"/bin/true"}, 0, ""},
		{"NoPOP by default service", "nopop@example.com\x00password-1\x00\x00", nil, show, 1, ""},
		{"NoIMAP on imaps", "noimap@example.com\x00password-1\x00\x00", []string{"TCPLOCALPORT=993"}, show, 1, ""},
		{"empty login", "\x00x\x00\x00", pop, show, 1, ""},
		{"empty password", "joe@example.com\x00\x00\x00", pop, show, 1, ""},
		{"too long", "joe@example.com\x00password-1\x00" + strings.Repeat("x", 600) + "\x00", pop, show, 1, ""},
		{"unterminated", "joe@example.com\x00password-1", pop, show, 2, ""},
		{"no NUL", "joe@example.com", pop, show, 2, ""},
		{"NUL in the login", "joe\x00@example.com\x00password-1\x00", pop, show, 1, ""},
		{"no program", "joe@example.com\x00password-1\x00\x00", pop, nil, 2, ""},
		{"program missing", "joe@example.com\x00password-1\x00\x00", pop, []string{"/nonexistent/prog"}, 111, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-delay", "0"}, tt.args...)
			code, out, _ := f.run(t, tt.fd3, tt.env, args...)
			if code != tt.code || out != tt.out {
				t.Fatalf("exit %d, output %q; want %d, %q", code, out, tt.code, tt.out)
			}
		})
	}
}

// A store that cannot be reached is a temporary failure (111), not a
// refusal.
func TestVchkpwStoreDown(t *testing.T) {
	f := newFixture(t)
	os.MkdirAll(filepath.Join(f.home, "control"), 0o755)
	if err := os.WriteFile(filepath.Join(f.home, "control", "vmaildb"), []byte("postgres://127.0.0.1:1/vmail?connect_timeout=5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, _ := f.run(t, "joe@example.com\x00password-1\x00\x00", nil, append([]string{"-delay", "0"}, show...)...)
	if code != 111 {
		t.Fatalf("exit %d, want 111", code)
	}
}

// Dovecot's checkpassword: SERVICE set, the reply program run with the
// user's environment, no change of uid (Dovecot refuses one) but the
// account as userdb_uid and userdb_gid in EXTRA.
func TestVchkpwDovecot(t *testing.T) {
	f := newFixture(t)
	prog := []string{"/bin/sh", "-c", `echo "$USER $HOME $EXTRA $userdb_uid $(id -u)"`}
	code, out, _ := f.run(t, "joe@example.com\x00password-1\x00", []string{"SERVICE=imap", "EXTRA=userdb_quota", "userdb_quota=x"}, append([]string{"-delay", "0"}, prog...)...)
	uid := os.Getuid()
	account := uid
	if uid == 0 {
		account = 65534
	}
	want := fmt.Sprintf("joe@example.com %s userdb_quota userdb_uid userdb_gid %d %d\n", f.dirs["joe"], account, uid)
	if code != 0 || out != want {
		t.Fatalf("exit %d, output %q; want 0, %q", code, out, want)
	}
	if code, _, _ := f.run(t, "noimap@example.com\x00password-1\x00", []string{"SERVICE=imap"}, append([]string{"-delay", "0"}, prog...)...); code != 1 {
		t.Fatalf("NoIMAP under Dovecot: exit %d, want 1", code)
	}
}

// Every refusal comes at the same moment after the start: an unknown
// mailbox cannot be told from a wrong password by the time taken.
func TestVchkpwRefusalTiming(t *testing.T) {
	f := newFixture(t)
	const delay = 400 * time.Millisecond
	for _, fd3 := range []string{
		"joe@example.com\x00wrong-password\x00\x00",
		"nobody@example.com\x00wrong-password\x00\x00",
		"joe@nowhere.example\x00wrong-password\x00\x00",
		"\x00\x00\x00",
	} {
		code, _, d := f.run(t, fd3, []string{"TCPLOCALPORT=110"}, append([]string{"-delay", delay.String()}, show...)...)
		if code != 1 || d < delay || d > delay+2*time.Second {
			t.Fatalf("%q: exit %d after %v, want 1 after %v", fd3, code, d, delay)
		}
	}
}

// vchkpw between qmail-popup and qmail-pop3d, as tcpserver or inetd runs
// them: a virtual mailbox logs in by its address and reads its Maildir;
// a wrong password and a mailbox without POP3 are refused.
func TestVchkpwUnderQmailPopup(t *testing.T) {
	f := newFixture(t)
	bin := binaries(t)
	md := filepath.Join(f.dirs["joe"], "Maildir")
	msg := filepath.Join(md, "new", "1000.1.host")
	if err := os.WriteFile(msg, []byte("Subject: virtual\n\nhello joe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(msg, old, old)
	if os.Getuid() == 0 {
		os.Chown(msg, 65534, 65534)
	}
	tests := []struct {
		user, pass, want string
	}{
		{"joe@example.com", "password-1", "+OK \r\n+OK \r\n+OK 1 28\r\n+OK \r\n"},
		{"joe@example.com", "password-2", "+OK \r\n-ERR authorization failed\r\n"},
		{"nopop@example.com", "password-1", "+OK \r\n-ERR authorization failed\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.pass, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "qmail-popup"), "pop.example.com", filepath.Join(bin, "vchkpw"), "-home", f.home, "-delay", "0", filepath.Join(bin, "qmail-pop3d"), "Maildir")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "TCPLOCALPORT=110", "TCPREMOTEIP=127.0.0.1"}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			br := bufio.NewReader(stdout)
			line := func() string {
				s, _ := br.ReadString('\n')
				return s
			}
			if g := line(); !strings.HasPrefix(g, "+OK <") {
				t.Fatalf("no greeting: %q", g)
			}
			var got string
			for _, c := range []string{"USER " + tt.user, "PASS " + tt.pass, "STAT", "QUIT"} {
				fmt.Fprintf(stdin, "%s\r\n", c)
				l := line()
				got += l
				if !strings.HasPrefix(l, "+OK") {
					break
				}
			}
			stdin.Close()
			if got != tt.want {
				t.Fatalf("session %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseInput(t *testing.T) {
	tests := []struct {
		in                string
		login, pass, chal string
		ok                bool
	}{
		{"a\x00b\x00c\x00", "a", "b", "c", true},
		{"a\x00b\x00c\x00rest", "a", "b", "c", true},
		{"a\x00b\x00", "a", "b", "", true}, // Dovecot's form
		{"a\x00b\x00c", "", "", "", false},
		{"a\x00b", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, tt := range tests {
		l, p, c, ok := parseInput([]byte(tt.in))
		if ok != tt.ok || ok && (l != tt.login || p != tt.pass || c != tt.chal) {
			t.Errorf("parseInput(%q) = %q %q %q %v", tt.in, l, p, c, ok)
		}
	}
}

func FuzzParseInput(f *testing.F) {
	f.Add([]byte("joe@example.com\x00pw\x00<1.2@h>\x00"))
	f.Add([]byte("a\x00b\x00"))
	f.Add([]byte("\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, p, c, ok := parseInput(b)
		if !ok {
			return
		}
		// The fields are what precedes the first NULs, and hold none.
		if strings.ContainsRune(l+p+c, 0) || !bytes.HasPrefix(b, []byte(l+"\x00"+p+"\x00")) {
			t.Fatalf("parseInput(%q) = %q %q %q", b, l, p, c)
		}
	})
}

func TestServiceOf(t *testing.T) {
	tests := []struct {
		env  map[string]string
		prog string
		want string
	}{
		{map[string]string{"SERVICE": "IMAP", "TCPLOCALPORT": "110"}, "x", "imap"},
		{map[string]string{"TCPLOCALPORT": "465"}, "x", "smtp"},
		{map[string]string{"TCPLOCALPORT": "995"}, "x", "pop3"},
		{map[string]string{"TCPLOCALPORT": "143"}, "x", "imap"},
		{map[string]string{"TCPLOCALPORT": "2525"}, "/bin/true", "smtp"},
		{nil, "/usr/lib/imapd", "imap"},
		{nil, "qmail-pop3d", "pop3"},
	}
	for _, tt := range tests {
		if got := serviceOf(func(k string) string { return tt.env[k] }, tt.prog); string(got) != tt.want {
			t.Errorf("serviceOf(%v, %q) = %q, want %q", tt.env, tt.prog, got, tt.want)
		}
	}
}
