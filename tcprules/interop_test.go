package tcprules

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/golden"
)

// Interop with Debian's ucspi-tcp (the IPv4 0.88 build): .ci/run installs
// it; the tests skip when it is absent.

func debianTools(t *testing.T) (tcprules, tcprulescheck string) {
	t.Helper()
	a, err1 := exec.LookPath("tcprules")
	b, err2 := exec.LookPath("tcprulescheck")
	if err1 != nil || err2 != nil {
		t.Skip("Debian's ucspi-tcp (tcprules, tcprulescheck) is not installed; apt-get install ucspi-tcp")
	}
	return a, b
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// ourTools builds examples/tcprules and examples/tcprulescheck once.
func ourTools(t *testing.T) (tcprules, tcprulescheck string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "tcprules-interop")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator), "../examples/tcprules", "../examples/tcprulescheck")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "tcprules"), filepath.Join(buildDir, "tcprulescheck")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// compileWith runs a tcprules program on rules and returns the cdb (nil on
// failure), its exit code and its stderr.
func compileWith(t *testing.T, prog string, rules []byte) (cdbBytes []byte, code int, stderr string) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "r.cdb")
	cmd := exec.Command(prog, out, filepath.Join(dir, "r.tmp"))
	cmd.Stdin = bytes.NewReader(rules)
	var eb bytes.Buffer
	cmd.Stderr = &eb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	if code == 0 {
		var rerr error
		if cdbBytes, rerr = os.ReadFile(out); rerr != nil {
			t.Fatal(rerr)
		}
	} else if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exited %d but left %s", prog, code, out)
	}
	return cdbBytes, code, eb.String()
}

// checkWith runs a tcprulescheck program for one connection.
func checkWith(t *testing.T, prog, cdbPath, ip string, host, info *string) string {
	t.Helper()
	cmd := exec.Command(prog, cdbPath)
	cmd.Env = []string{"TCPREMOTEIP=" + ip}
	if host != nil {
		cmd.Env = append(cmd.Env, "TCPREMOTEHOST="+*host)
	}
	if info != nil {
		cmd.Env = append(cmd.Env, "TCPREMOTEINFO="+*info)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s (ip %s): %v", prog, cdbPath, ip, err)
	}
	return string(out)
}

func TestInteropGolden(t *testing.T) {
	debRules, debCheck := debianTools(t)
	ourRules, ourCheck := ourTools(t)
	dir := golden.Dir(t, "tcprules")
	// Not ipv6: Debian's tcprules here is the IPv4 build.
	for _, name := range goldenSets[:len(goldenSets)-1] {
		t.Run(name, func(t *testing.T) {
			rules, err := os.ReadFile(filepath.Join(dir, name+".rules"))
			if err != nil {
				t.Fatal(err)
			}
			ours, code, _ := compileWith(t, ourRules, rules)
			theirs, code2, _ := compileWith(t, debRules, rules)
			if code != 0 || code2 != 0 || !bytes.Equal(ours, theirs) {
				t.Fatalf("exit %d/%d; cdbs equal: %v", code, code2, bytes.Equal(ours, theirs))
			}
			tmp := t.TempDir()
			ourCDB, debCDB := filepath.Join(tmp, "ours.cdb"), filepath.Join(tmp, "debian.cdb")
			os.WriteFile(ourCDB, ours, 0o644)
			os.WriteFile(debCDB, theirs, 0o644)
			for _, c := range readLookups(t, filepath.Join(dir, name+".lookups")) {
				// Debian's tcprulescheck on our cdb; our tcprulescheck on Debian's.
				a := checkWith(t, debCheck, ourCDB, c.ip, c.host, c.info)
				b := checkWith(t, ourCheck, debCDB, c.ip, c.host, c.info)
				if a != b || formatLookup(a) != c.want {
					t.Errorf("%s\nDebian on ours: %q\nours on Debian's: %q", c.line, a, b)
				}
			}
		})
	}
	for _, name := range badSets {
		t.Run(name+".bad", func(t *testing.T) {
			rules, _ := os.ReadFile(filepath.Join(dir, name+".bad.rules"))
			_, code, stderr := compileWith(t, ourRules, rules)
			_, code2, stderr2 := compileWith(t, debRules, rules)
			if code != code2 || stderr != stderr2 {
				t.Errorf("ours: %d %q; Debian: %d %q", code, stderr, code2, stderr2)
			}
		})
	}
}

// ruleGen makes random rules files from small pools, so that lookups hit
// them often.
type ruleGen struct{ r *rand.Rand }

func (g ruleGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g ruleGen) octet() string { return g.pick("0", "1", "2", "10", "127", "192", "255") }

func (g ruleGen) ip() string {
	return g.octet() + "." + g.octet() + "." + g.octet() + "." + g.octet()
}

func (g ruleGen) host() string {
	return g.pick("a.example.com", "b.a.example.com", "example.com", "mail-1.example.org", "localhost", "x.y.z", "Upper.Example.com")
}

func (g ruleGen) address() string {
	switch g.r.IntN(12) {
	case 0, 1, 2:
		return g.ip()
	case 3, 4: // a prefix
		parts := strings.Split(g.ip(), ".")
		return strings.Join(parts[:1+g.r.IntN(3)], ".") + "."
	case 5: // a range in some component
		parts := strings.Split(g.ip(), ".")
		i := g.r.IntN(4)
		lo, hi := g.r.IntN(12), g.r.IntN(300)
		switch g.r.IntN(6) {
		case 0:
			parts[i] = fmt.Sprintf("-%d", hi)
		case 1:
			parts[i] = fmt.Sprintf("%d-", lo)
		default:
			parts[i] = fmt.Sprintf("%d-%d", lo, hi)
		}
		return strings.Join(parts[:1+g.r.IntN(4)], ".")
	case 6:
		return "=" + g.host()
	case 7:
		h := g.host()
		if i := strings.IndexByte(h, '.'); i >= 0 {
			return "=" + h[i:]
		}
		return "="
	case 8:
		return g.pick("joe", "", "bill") + "@" + g.pick(g.ip(), "="+g.host())
	case 9:
		return g.pick("", "=", "1", "1.2.3.4.")
	default:
		return g.ip()
	}
}

func (g ruleGen) value() string {
	const chars = "abcXYZ019 ,:=-_@.\"'/"
	b := make([]byte, g.r.IntN(8))
	for i := range b {
		b[i] = chars[g.r.IntN(len(chars))]
	}
	return string(b)
}

func (g ruleGen) line() string {
	switch g.r.IntN(20) {
	case 0:
		return g.pick("# a comment", "", "no colon here", "\t")
	case 1:
		if g.r.IntN(4) != 0 {
			break
		}
		// Lines tcprules refuses.
		return g.address() + g.pick(": allow", ":allow,X=\"unterminated", ":allowed", ":DENY", ":allow ,X=\"1\"",
			":allow,X", ":allow,X=", ":deny,X=\"a\"junk", ":allow:deny") + g.pick("", "\r")
	case 2:
		if g.r.IntN(3) != 0 {
			break
		}
		return g.pick("bad-name", "1.2.x-3", "1.2-3-4.5", "1.2.3.4-5x", "18446744073709551617-2.1.") + ":allow"
	}
	var b strings.Builder
	b.WriteString(g.address())
	b.WriteString(g.pick(":allow", ":allow", ":deny"))
	for range g.r.IntN(4) {
		b.WriteString(",")
		b.WriteString(g.pick("RELAYCLIENT", "A", "B", "X", "RBLSMTPD", ""))
		b.WriteString("=")
		v := g.value()
		// A quote byte that the value does not contain.
		for _, q := range []byte("\"'/|;#") {
			if strings.IndexByte(v, q) < 0 {
				b.WriteByte(q)
				b.WriteString(v)
				b.WriteByte(q)
				break
			}
		}
	}
	b.WriteString(g.pick("", "", "", " ", "\t ", "  "))
	return b.String()
}

func (g ruleGen) rules(n int) []byte {
	var b bytes.Buffer
	for range n {
		b.WriteString(g.line())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (g ruleGen) query() (ip string, host, info *string) {
	ip = g.ip()
	switch g.r.IntN(8) {
	case 0:
		ip = g.pick("0.0.0.0", "1", "1.2.3.4.", "", "::1", "10.0.0.300")
	}
	opt := func(s ...string) *string {
		if g.r.IntN(2) == 0 {
			return nil
		}
		v := g.pick(s...)
		return &v
	}
	host = opt(g.host(), g.host(), "", "upper.example.com")
	info = opt("joe", "bill", "")
	return ip, host, info
}

// TestInteropRandom compiles random rule sets with ours and Debian's
// tcprules (same bytes, or the same refusal), then asks Debian's
// tcprulescheck about random connections on our cdb and compares with our
// Lookup on Debian's cdb.
func TestInteropRandom(t *testing.T) {
	debRules, debCheck := debianTools(t)
	ourRules, _ := ourTools(t)
	g := ruleGen{rand.New(rand.NewPCG(3, 7))}
	sets, queries := 60, 25
	if testing.Short() {
		sets, queries = 10, 10
	}
	compiled, refused := 0, 0
	for i := range sets {
		rules := g.rules(1 + g.r.IntN(30))
		ours, code, stderr := compileWith(t, ourRules, rules)
		theirs, code2, stderr2 := compileWith(t, debRules, rules)
		if code != code2 || stderr != stderr2 || !bytes.Equal(ours, theirs) {
			t.Fatalf("set %d:\n%s\nours: exit %d %q; Debian: exit %d %q; cdbs equal: %v",
				i, rules, code, stderr, code2, stderr2, bytes.Equal(ours, theirs))
		}
		// The library agrees with our program.
		lib, err := Compile(bytes.NewReader(rules))
		if (err == nil) != (code == 0) || !bytes.Equal(lib, ours) {
			t.Fatalf("set %d: Compile: %v; program exit %d", i, err, code)
		}
		if code != 0 {
			refused++
			continue
		}
		compiled++
		ourCDB := filepath.Join(t.TempDir(), "ours.cdb")
		if err := os.WriteFile(ourCDB, ours, 0o644); err != nil {
			t.Fatal(err)
		}
		debDB, err := OpenBytes(theirs)
		if err != nil {
			t.Fatal(err)
		}
		for range queries {
			ip, host, info := g.query()
			want := checkWith(t, debCheck, ourCDB, ip, host, info)
			d, err := debDB.Lookup(ip, host, info)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Report(); got != want {
				t.Errorf("set %d:\n%s\nip %q host %v info %v:\nours: %q\nDebian: %q", i, rules, ip, deref(host), deref(info), got, want)
			}
		}
	}
	t.Logf("%d sets compiled identically, %d refused identically", compiled, refused)
	if compiled == 0 || refused == 0 {
		t.Errorf("generator covers too little: %d compiled, %d refused", compiled, refused)
	}
}

func deref(p *string) string {
	if p == nil {
		return "(unset)"
	}
	return fmt.Sprintf("%q", *p)
}

// TestInteropRandomBytes feeds both tcprules programs lines made of the
// bytes the grammar cares about (NUL, CR, TAB, ':', ',', '=', quotes, '-',
// '.', '@', digits, the letters of allow and deny): refusals must print the
// same message, and accepted files must give the same cdb.
func TestInteropRandomBytes(t *testing.T) {
	debRules, _ := debianTools(t)
	ourRules, _ := ourTools(t)
	r := rand.New(rand.NewPCG(11, 13))
	pieces := []string{"\x00", "\r", "\t", " ", ":", ",", "=", "\"", "'", "-", ".", "@", "#",
		"1", "2", "25", "300", "a", "x", "allow", "deny", ":allow", ":deny", ",X=", "\"v\"", "1.2.3.", "4-6", "=h.example"}
	n := 150
	if testing.Short() {
		n = 30
	}
	same, refused := 0, 0
	for i := range n {
		var b bytes.Buffer
		for range 1 + r.IntN(4) {
			// Mostly well-formed heads, so that lines get past "allow".
			if r.IntN(3) > 0 {
				b.WriteString(pieces[13+r.IntN(6)] + pieces[r.IntN(len(pieces))] + ":" + []string{"allow", "deny"}[r.IntN(2)])
			}
			for range r.IntN(6) {
				b.WriteString(pieces[r.IntN(len(pieces))])
			}
			if r.IntN(8) > 0 {
				b.WriteByte('\n')
			}
		}
		rules := b.Bytes()
		if ipv6Only(rules) {
			continue
		}
		ours, code, stderr := compileWith(t, ourRules, rules)
		theirs, code2, stderr2 := compileWith(t, debRules, rules)
		if code != code2 || stderr != stderr2 || !bytes.Equal(ours, theirs) {
			t.Fatalf("input %d %q:\nours: exit %d %q; Debian: exit %d %q; cdbs equal: %v",
				i, rules, code, stderr, code2, stderr2, bytes.Equal(ours, theirs))
		}
		if code == 0 {
			same++
		} else {
			refused++
		}
	}
	t.Logf("%d inputs compiled identically, %d refused identically", same, refused)
}

// ipv6Only reports whether a line of rules has a colon in its address: the
// IPv6 patch (which we follow) splits it at a later colon followed by
// "allow" or "deny", where 0.88 splits it at the first colon and refuses it.
func ipv6Only(rules []byte) bool {
	for _, line := range bytes.Split(rules, []byte("\n")) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		line = bytes.TrimRight(line, " \t")
		if c := findColon(line); c >= 0 && c != bytes.IndexByte(line, ':') {
			return true
		}
	}
	return false
}

// TestInteropTcpserverEnv gives the same rules to Debian's tcpserver (-x,
// running env as its program) and to a Listener, and compares the
// environments the two hand to a server for the same connection.
func TestInteropTcpserverEnv(t *testing.T) {
	tcpserver, err := exec.LookPath("tcpserver")
	if err != nil {
		t.Skip("Debian's ucspi-tcp (tcpserver) is not installed; apt-get install ucspi-tcp")
	}
	envProg, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env program")
	}
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, rules, "127.0.0.2:deny\n127.0.0.:allow,RELAYCLIENT=\"\",X=\"1\",X=\"2\",TCPLOCALPORT=\"override\",=\"odd\"\n:deny\n")

	cmd := exec.Command(tcpserver, "-1", "-H", "-R", "-l", "0", "-x", rules, "127.0.0.1", "0", envProg)
	cmd.Env = []string{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	port, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("tcpserver -1: %v", err)
	}
	theirAddr := "127.0.0.1:" + strings.TrimSpace(port)

	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, Rules: rules, LocalHost: "0"}
	server(t, l, func(c *Conn) {
		defer c.Close()
		var b strings.Builder
		for k, v := range c.Env() {
			b.WriteString(k + "=" + v + "\n")
		}
		io.WriteString(c, b.String())
	})

	// get dials addr from src and returns the environment with the ports
	// replaced by names, since they differ between the two servers.
	get := func(addr, src string) map[string]string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		out, _ := io.ReadAll(c)
		if len(out) == 0 {
			return nil
		}
		env := map[string]string{}
		for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
		_, lport, _ := net.SplitHostPort(addr)
		_, rport, _ := net.SplitHostPort(c.LocalAddr().String())
		for k, v := range env {
			switch v {
			case lport:
				env[k] = "LOCALPORT"
			case rport:
				env[k] = "REMOTEPORT"
			}
		}
		return env
	}
	for _, src := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.9"} {
		theirs, ours := get(theirAddr, src), get(ln.Addr().String(), src)
		t.Logf("from %s: %v", src, ours)
		if fmt.Sprint(theirs) != fmt.Sprint(ours) {
			t.Errorf("from %s:\ntcpserver: %v\nListener:  %v", src, theirs, ours)
		}
	}
}
