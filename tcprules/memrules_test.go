package tcprules

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dialFrom connects to addr from the loopback address from and returns the
// environment writeEnv reported, nil when the connection was closed
// without a word.
func dialFrom(t *testing.T, from, addr string) map[string]string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot connect from %s: %v", from, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "x\n")
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	if len(b) == 0 {
		return nil
	}
	head, _, _ := strings.Cut(string(b), "\n\n")
	env := map[string]string{}
	for _, l := range strings.Split(head, "\n") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = v
	}
	return env
}

// Rules in memory, as a compiled cdb (RulesData) or parsed rules
// (RuleSet), decide as the same rules in a cdb file do; what cannot be
// read, or an ambiguous setting, drops every connection.
func TestListenerRulesInMemory(t *testing.T) {
	const text = "127.0.0.2:deny\n127.0.0.1:allow,RELAYCLIENT=\"\",X=\"1\",X=\"2\"\n:deny\n"
	compiled, err := Compile(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, file, text)
	handBuilt := []Rule{
		{Address: "127.0.0.2", Deny: true},
		{Address: "127.0.0.1", Env: []Var{{"RELAYCLIENT", ""}, {"X", "1"}, {"X", "2"}}},
		{Address: "", Deny: true},
	}
	allowed := map[string]string{"RELAYCLIENT": "", "X": "2", "TCPREMOTEIP": "127.0.0.1"}
	for _, tc := range []struct {
		name           string
		l              *Listener
		from1, from2   map[string]string // what must be in the env from 127.0.0.1 and .2; nil: dropped
		denied, droppd uint64
	}{
		{"file", &Listener{Rules: file}, allowed, nil, 1, 0},
		{"RulesData", &Listener{RulesData: compiled}, allowed, nil, 1, 0},
		{"RuleSet parsed", &Listener{RuleSet: parsed}, allowed, nil, 1, 0},
		{"RuleSet built in Go", &Listener{RuleSet: handBuilt}, allowed, nil, 1, 0},
		{"RuleSet with a range", &Listener{RuleSet: []Rule{{Address: "127.0.0.1-2", Env: []Var{{"R", "r"}}}, {Address: "", Deny: true}}},
			map[string]string{"R": "r"}, map[string]string{"R": "r", "TCPREMOTEIP": "127.0.0.2"}, 0, 0},
		{"RuleSet with explicit keys", &Listener{RuleSet: []Rule{{Address: "ignored", Keys: []string{"127.0.0.2"}, Deny: true}}},
			map[string]string{"TCPREMOTEIP": "127.0.0.1"}, nil, 1, 0},
		{"RuleSet empty", &Listener{RuleSet: []Rule{}}, map[string]string{"TCPREMOTEIP": "127.0.0.1"}, map[string]string{"TCPREMOTEIP": "127.0.0.2"}, 0, 0},
		{"RuleSet bad range", &Listener{RuleSet: []Rule{{Address: "127.0.0.x-2"}}}, nil, nil, 0, 2},
		{"RulesData corrupt", &Listener{RulesData: []byte("short")}, nil, nil, 0, 2},
		{"RulesData empty", &Listener{RulesData: []byte{}}, nil, nil, 0, 2},
		{"RulesData and Rules", &Listener{RulesData: compiled, Rules: file}, nil, nil, 0, 2},
		{"RuleSet and RulesData", &Listener{RulesData: compiled, RuleSet: parsed}, nil, nil, 0, 2},
		{"AllowMissing does not allow bad data", &Listener{RulesData: []byte("short"), AllowMissing: true}, nil, nil, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t, "tcp", "127.0.0.1:0")
			l := tc.l
			l.Listener = ln
			server(t, l, writeEnv)
			for _, c := range []struct {
				ip   string
				want map[string]string
			}{{"127.0.0.1", tc.from1}, {"127.0.0.2", tc.from2}} {
				env := dialFrom(t, c.ip, ln.Addr().String())
				if (env == nil) != (c.want == nil) {
					t.Errorf("from %s: env %v, want %v", c.ip, env, c.want)
					continue
				}
				for k, v := range c.want {
					if got, ok := env[k]; !ok || got != v {
						t.Errorf("from %s: %s=%q (set %v), want %q", c.ip, k, got, ok, v)
					}
				}
			}
			if s := l.Stats(); s.Denied != tc.denied || s.Dropped != tc.droppd {
				t.Errorf("Stats = %+v, want %d denied, %d dropped", s, tc.denied, tc.droppd)
			}
		})
	}
}

// RulesData is read once: changing the caller's slice, or the rules file
// compiled from the same text, after the first Accept changes nothing.
func TestListenerRulesDataCopied(t *testing.T) {
	data, err := Compile(strings.NewReader("127.0.0.1:allow,V=\"1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, RulesData: data}
	server(t, l, writeEnv)
	if env := dialFrom(t, "127.0.0.1", ln.Addr().String()); env["V"] != "1" {
		t.Fatalf("env %v", env)
	}
	for i := range data {
		data[i] = 0
	}
	if env := dialFrom(t, "127.0.0.1", ln.Addr().String()); env["V"] != "1" {
		t.Errorf("after the caller's slice changed: env %v", env)
	}
}

// A RuleSet is compiled into the very cdb tcprules writes for the same
// text, whether its rules carry their Keys (Parse's) or not.
func FuzzRuleSetCompile(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:allow,RELAYCLIENT=\"\"\n:deny\n",
		"10.1.2.3-7:deny\n10.2-3.:allow,A=\"x\",A=\"y\"\n",
		"=.example.com:allow,RBLSMTPD=\"-no\"\njoe@=h.example:allow\n2001:db8::allow,NET=\"v6\"\n",
		"1.2.3.9-4:deny\n",
		"# comment\n\n127.:allow\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		want, err := Compile(strings.NewReader(text))
		if err != nil {
			return
		}
		rules, err := Parse(strings.NewReader(text))
		if err != nil {
			t.Fatalf("Compile accepted what Parse refused: %v", err)
		}
		got, err := compileRules(rules)
		if err != nil {
			t.Fatalf("compileRules: %v", err)
		}
		if string(got) != string(want) {
			t.Fatalf("RuleSet compiles to %d bytes, Compile to %d", len(got), len(want))
		}
		for i := range rules {
			rules[i].Keys = nil
		}
		if got, err := compileRules(rules); err != nil || string(got) != string(want) {
			t.Fatalf("without Keys: %v, equal %v", err, string(got) == string(want))
		}
	})
}
