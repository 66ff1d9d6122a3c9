package dotqmail

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Instruction
		err  int // line of a ParseError, 0 for none
	}{
		// Maildir and mbox lines (see dot-qmail(5)).
		{"maildir", "./Maildir/\n", []Instruction{{Maildir, "./Maildir/", 1}}, 0},
		{"mbox no final newline", "./Mailbox", []Instruction{{Mbox, "./Mailbox", 1}}, 0},
		{"trailing space and tab", "/var/mail/joe \t", []Instruction{{Mbox, "/var/mail/joe", 1}}, 0},
		// A blank first line is an error; a later blank line is ignored.
		{"first line blank", "\n./Mailbox\n", nil, 1},
		{"first line only spaces", " \t\n./Mailbox\n", nil, 1},
		{"blank second line", "# hi\n\n./Mailbox\n", []Instruction{{Mbox, "./Mailbox", 3}}, 0},
		// Forwards and programs, in file order.
		{"forwards and program", "&a@b\nc@d\n|prog\n",
			[]Instruction{{Forward, "a@b", 1}, {Forward, "c@d", 2}, {Program, "prog", 3}}, 0},
		{"plus lines", "+list\n+other\n+\n|prog\n", []Instruction{{List, "", 1}, {Program, "prog", 4}}, 0},
		{"+list with trailing space", "+list \n", []Instruction{{List, "", 1}}, 0},
		{"+List is not +list", "+List\n", nil, 0},
		// The type is decided by the first byte alone, so a leading space makes
		// a forward and a CR left by a CRLF file ends an mbox path.
		{"leading space forwards", " ./Mailbox\n", []Instruction{{Forward, " ./Mailbox", 1}}, 0},
		{"CRLF maildir becomes mbox", "./Maildir/\r\n", []Instruction{{Mbox, "./Maildir/\r", 1}}, 0},
		{"absolute maildir", "/var/spool/joe/\n", []Instruction{{Maildir, "/var/spool/joe/", 1}}, 0},
		{"dot alone is mbox", ".\n", []Instruction{{Mbox, ".", 1}}, 0},
		{"slash alone is maildir", "/\n", []Instruction{{Maildir, "/", 1}}, 0},
		{"program keeps inner spaces", "| prog  a  b \n", []Instruction{{Program, " prog  a  b", 1}}, 0},
		{"empty program", "|\n", []Instruction{{Program, "", 1}}, 0},
		{"empty ampersand", "&\n", []Instruction{{Forward, "", 1}}, 0},
		{"comment only", "# nothing\n", nil, 0},
		{"empty", "", nil, 1},
		{"nul byte", "./Mailbox\na\x00b\n", nil, 2},
		{"blank lines at end", "joe@x\n\n\n", []Instruction{{Forward, "joe@x", 1}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(".qmail-test", []byte(tt.in))
			if tt.err != 0 {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("Parse(%q) error = %v, want a ParseError", tt.in, err)
				}
				if pe.Line != tt.err || pe.File != ".qmail-test" {
					t.Errorf("ParseError at %s:%d, want .qmail-test:%d", pe.File, pe.Line, tt.err)
				}
				if !strings.Contains(err.Error(), ".qmail-test:") || pe.Permanent() {
					t.Errorf("error %q: want file and line named, temporary", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseFirstBlankText(t *testing.T) {
	_, err := Parse(".qmail", []byte("\n"))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Text != "Uh-oh: first line of .qmail file is blank. (#4.2.1)" {
		t.Fatalf("got %v", err)
	}
	if err.Error() != "dotqmail: .qmail:1: first line is blank" {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestInstructionString(t *testing.T) {
	for _, tt := range []struct {
		in   Instruction
		want string
	}{
		{Instruction{Kind: Maildir, Arg: "./Maildir/"}, "maildir ./Maildir/"},
		{Instruction{Kind: Mbox, Arg: "./Mailbox"}, "mbox ./Mailbox"},
		{Instruction{Kind: Program, Arg: "prog arg"}, "program prog arg"},
		{Instruction{Kind: Forward, Arg: "a@b"}, "forward a@b"},
	} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	if Kind(99).String() != "Kind(99)" {
		t.Errorf("Kind(99) = %q", Kind(99).String())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"./Maildir/\n", "\n./Mailbox\n", "&a@b\nc@d\n|prog\n", "+list\n|x\n",
		"# c\n\n/var/mail/x \t\n", " ./Mailbox\r\n", "a\x00b", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ins, err := Parse("f", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Text == "" {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		lines := strings.Split(string(data), "\n")
		prev := 0
		for _, in := range ins {
			if in.Line <= prev || in.Line > len(lines) {
				t.Fatalf("line numbers out of order: %v", ins)
			}
			prev = in.Line
			raw := strings.TrimRight(lines[in.Line-1], " \t")
			if strings.ContainsRune(in.Arg, '\n') || strings.ContainsRune(in.Arg, 0) {
				t.Fatalf("argument holds a newline or NUL: %q", in.Arg)
			}
			switch in.Kind {
			case Maildir:
				if in.Arg != raw || !strings.HasSuffix(raw, "/") {
					t.Fatalf("maildir %q from %q", in.Arg, raw)
				}
			case Mbox:
				if in.Arg != raw || strings.HasSuffix(raw, "/") || (raw[0] != '.' && raw[0] != '/') {
					t.Fatalf("mbox %q from %q", in.Arg, raw)
				}
			case Program:
				if "|"+in.Arg != raw {
					t.Fatalf("program %q from %q", in.Arg, raw)
				}
			case Forward:
				if in.Arg != raw && "&"+in.Arg != raw {
					t.Fatalf("forward %q from %q", in.Arg, raw)
				}
			case List:
				if raw != "+list" {
					t.Fatalf("+list from %q", raw)
				}
			default:
				t.Fatalf("kind %v", in.Kind)
			}
		}
	})
}

func TestErrorText(t *testing.T) {
	for _, tt := range []struct {
		err  *Error
		want string
	}{
		{&Error{Perm: true, File: ".qmail-x", Line: 2, Err: &ExitError{Command: "exit 100", Code: 100}},
			"dotqmail: .qmail-x:2: program exited 100: exit 100"},
		{&Error{Text: "Aack, child crashed. (#4.3.0)", Err: &ExitError{Command: "x", Code: -1, Signal: 9}},
			"dotqmail: Aack, child crashed. (#4.3.0): program killed by signal 9 (killed): x"},
		{&Error{Text: "Sorry, no mailbox here by that name. (#5.1.1)", Perm: true},
			"dotqmail: Sorry, no mailbox here by that name. (#5.1.1)"},
		{&Error{}, "dotqmail: delivery failed"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if tt.err.ExitCode() != ExitCode(tt.err) {
			t.Errorf("ExitCode mismatch for %v", tt.err)
		}
	}
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 111 {
		t.Error("ExitCode of nil or a plain error")
	}
	if (&ExitError{Code: 100}).Permanent() != true || (&ExitError{Code: -1}).Permanent() || (&ExitError{Code: 99}).Permanent() {
		t.Error("ExitError.Permanent")
	}
}
