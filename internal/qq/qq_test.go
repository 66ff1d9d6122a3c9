package qq

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// qmail's qmail_close mapping of qmail-queue's exit codes to a report:
// D permanent, Z temporary (see qmail-queue(8)).
func TestExitText(t *testing.T) {
	for _, tt := range []struct {
		code   int
		custom string
		want   string
	}{
		{0, "", ""},
		{-1, "", "Zqq crashed (#4.3.0)"},
		{11, "", "Denvelope address too long for qq (#5.1.3)"},
		{115, "", "Denvelope address too long for qq (#5.1.3)"},
		{31, "", "Dmail server permanently rejected message (#5.3.0)"},
		{53, "", "Zqq write error or disk full (#4.3.0)"},
		{54, "", "Zqq read error (#4.3.0)"},
		{61, "", "Zqq trouble in home directory (#4.3.0)"},
		{64, "", "Zqq trouble creating files in queue (#4.3.0)"},
		{74, "", "Zcommunication with mail server failed (#4.4.2)"},
		{91, "", "Zqq internal bug (#4.3.0)"},
		{120, "", "Zunable to exec qq (#4.3.0)"},
		{40, "", "Dqq permanent problem (#5.3.0)"},
		{99, "", "Zqq temporary problem (#4.3.0)"},
		{82, "Dno thanks", "Dno thanks"},
		{82, "D", "Zqq temporary problem (#4.3.0)"},
		{82, "xyz", "xyz"},
		{82, strings.Repeat("Z", 300), strings.Repeat("Z", 255)},
	} {
		if got := ExitText(tt.code, []byte(tt.custom)); got != tt.want {
			t.Errorf("ExitText(%d, %q) = %q, want %q", tt.code, tt.custom, got, tt.want)
		}
	}
}

func TestEnvelope(t *testing.T) {
	if got := string(Envelope("a@b", []string{"c@d", "e@f"})); got != "Fa@b\x00Tc@d\x00Te@f\x00\x00" {
		t.Errorf("Envelope = %q", got)
	}
	if got := string(Envelope("", nil)); got != "F\x00\x00" {
		t.Errorf("empty Envelope = %q", got)
	}
}

// program writes a qmail-queue stand-in: it saves descriptors 0 and 1 in
// its working directory and runs tail (shell) before exiting.
func program(t *testing.T, tail string) (*Program, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "qmail-queue")
	script := "#!/bin/sh\ncat > msg\ncat <&1 > env\n" + tail + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Program{Path: path, Dir: dir}, dir
}

func TestRun(t *testing.T) {
	p, dir := program(t, "exit 0")
	id, err := p.Run(t.Context(), "a@b", []string{"c@d"}, strings.NewReader("Subject: x\n\nbody\n"))
	if err != nil || id == "" {
		t.Fatalf("Run = %q, %v", id, err)
	}
	msg, _ := os.ReadFile(filepath.Join(dir, "msg"))
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if string(msg) != "Subject: x\n\nbody\n" || string(env) != "Fa@b\x00Tc@d\x00\x00" {
		t.Errorf("program got message %q, envelope %q", msg, env)
	}
}

func TestRunFailures(t *testing.T) {
	for _, tt := range []struct {
		name, tail string
		want       string
		perm       bool
	}{
		{"disk full", "exit 53", "Zqq write error or disk full (#4.3.0)", false},
		{"refused", "exit 31", "Dmail server permanently rejected message (#5.3.0)", true},
		{"custom text", "printf 'Dgo away' >&6; exit 82", "Dgo away", true},
		{"long custom text", "head -c 70000 /dev/zero | tr '\\0' Z >&6; exit 82", "Z" + strings.Repeat("Z", 254), false},
		{"killed", "kill -9 $$", "Zqq crashed (#4.3.0)", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := program(t, tt.tail)
			_, err := p.Run(t.Context(), "a@b", []string{"c@d"}, strings.NewReader("x\n"))
			var qe *Error
			if !errors.As(err, &qe) || qe.Result != tt.want || qe.Permanent() != tt.perm {
				t.Fatalf("Run: %v, want result %q (permanent %v)", err, tt.want, tt.perm)
			}
		})
	}
}

func TestRunNotStarted(t *testing.T) {
	p := &Program{Path: filepath.Join(t.TempDir(), "missing")}
	msg := strings.NewReader("data the client still sends\n")
	_, err := p.Run(t.Context(), "a@b", []string{"c@d"}, msg)
	var qe *Error
	if !errors.As(err, &qe) || qe.Exit != 120 {
		t.Fatalf("missing program: %v, want exit 120", err)
	}
	if msg.Len() != 0 {
		t.Error("the message was not read to its end")
	}
	p = &Program{Path: "/bin/true", Dir: filepath.Join(t.TempDir(), "no-home")}
	if _, err := p.Run(t.Context(), "a@b", nil, strings.NewReader("")); !errors.As(err, &qe) || qe.Exit != 61 {
		t.Fatalf("missing home: %v, want exit 61", err)
	}
}

// A message that fails to read is not queued: no envelope is written and
// the reader's error comes back as is.
func TestRunReadError(t *testing.T) {
	p, dir := program(t, "exit 54")
	boom := errors.New("client went away")
	_, err := p.Run(t.Context(), "a@b", []string{"c@d"}, io.MultiReader(strings.NewReader("part"), errReader{boom}))
	if err != boom {
		t.Fatalf("Run = %v, want the read error", err)
	}
	if env, _ := os.ReadFile(filepath.Join(dir, "env")); len(env) != 0 {
		t.Errorf("envelope written: %q", env)
	}
}

// A program that stops reading early still has the message drained.
func TestRunProgramStopsReading(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qq")
	os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	p := &Program{Path: path}
	msg := strings.NewReader(strings.Repeat("x", 1<<20))
	_, err := p.Run(t.Context(), "a@b", []string{"c@d"}, msg)
	var qe *Error
	if !errors.As(err, &qe) || qe.Result != "Zqq read error (#4.3.0)" {
		t.Fatalf("Run = %v, want qq read error", err)
	}
	if msg.Len() != 0 {
		t.Error("the message was not drained")
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
