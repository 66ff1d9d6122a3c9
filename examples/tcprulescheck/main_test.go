package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/golden"
)

// reformat turns tcprulescheck's output into the .lookups notation, as the
// golden README's lookups.py does.
func reformat(out string) string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	where := "default"
	if lines[0] != "default:" {
		where = "rule " + q(lines[0][5:len(lines[0])-1])
	}
	var envs []string
	verdict := ""
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "set environment variable "):
			k, v, _ := strings.Cut(l[len("set environment variable "):], "=")
			envs = append(envs, k+"="+q(v))
		case l == "allow connection":
			verdict = "allow"
		case l == "deny connection":
			verdict = "deny"
		}
	}
	return strings.Join(append(append([]string{verdict}, envs...), ";", where), " ")
}

func TestGolden(t *testing.T) {
	dir := golden.Dir(t, "tcprules")
	for _, name := range []string{"basic", "prefix", "ranges", "hosts", "info", "env", "order", "qmail", "ipv6"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, name+".lookups"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				line := sc.Text()
				in, want, _ := strings.Cut(line, " -> ")
				fields := strings.Fields(in)
				env := map[string]string{"TCPREMOTEIP": fields[0]}
				for i, name := range []string{"TCPREMOTEHOST", "TCPREMOTEINFO"} {
					switch v := fields[i+1]; v {
					case "-":
					case `""`:
						env[name] = ""
					default:
						env[name] = v
					}
				}
				getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
				var stdout, stderr bytes.Buffer
				code := run([]string{"tcprulescheck", filepath.Join(dir, name+".cdb")}, getenv, &stdout, &stderr)
				if code != 0 || stderr.Len() != 0 {
					t.Fatalf("%s: exit %d, stderr %q", line, code, stderr.String())
				}
				if got := reformat(stdout.String()); got != want {
					t.Errorf("%s\n got: %s", line, got)
				}
			}
		})
	}
}

func TestOutput(t *testing.T) {
	dir := golden.Dir(t, "tcprules")
	basic := filepath.Join(dir, "basic.cdb")
	none := func(string) (string, bool) { return "", false }
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		name           string
		args           []string
		getenv         func(string) (string, bool)
		code           int
		stdout, stderr string
	}{
		{"usage", []string{"tcprulescheck"}, none, 100, "", "tcprulescheck: usage: tcprulescheck rules.cdb\n"},
		{"relay", []string{"tcprulescheck", basic}, env(map[string]string{"TCPREMOTEIP": "127.0.0.1"}), 0,
			"rule 127.0.0.1:\nset environment variable RELAYCLIENT=\nallow connection\n", ""},
		{"deny", []string{"tcprulescheck", basic}, env(map[string]string{"TCPREMOTEIP": "10.1.2.3"}), 0,
			"rule 10.1.2.3:\ndeny connection\n", ""},
		{"no ip is 0.0.0.0", []string{"tcprulescheck", filepath.Join(dir, "prefix.cdb")}, none, 0,
			"default:\nallow connection\n", ""},
		{"missing", []string{"tcprulescheck", "/nonexistent/rules.cdb"}, none, 111, "",
			"tcprulescheck: fatal: unable to read /nonexistent/rules.cdb: file does not exist\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, tt.getenv, &stdout, &stderr)
			if code != tt.code || stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
			}
		})
	}

	short := filepath.Join(t.TempDir(), "short.cdb")
	os.WriteFile(short, make([]byte, 100), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"tcprulescheck", short}, none, &stdout, &stderr); code != 111 ||
		stderr.String() != "tcprulescheck: fatal: unable to read "+short+": protocol error\n" {
		t.Errorf("short cdb: exit %d, stderr %q", code, stderr.String())
	}
}
