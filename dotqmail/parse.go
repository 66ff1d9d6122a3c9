package dotqmail

import (
	"bytes"
	"fmt"
	"strconv"
)

// Kind is the type of a .qmail line, decided by its first byte (see
// dot-qmail(5)).
type Kind uint8

const (
	// Forward sends the message on to an address: a line starting with
	// '&' (the address is the rest of the line) or with any byte that
	// starts no other kind (the address is the whole line).
	Forward Kind = iota + 1
	// Program pipes the message into "/bin/sh -c" with the rest of a line
	// starting with '|'.
	Program
	// Mbox appends the message to an mbox file: a line starting with '.'
	// or '/' and not ending in '/'.
	Mbox
	// Maildir delivers the message into a Maildir: a line starting with
	// '.' or '/' and ending in '/'.
	Maildir
	// List is the line "+list", which turns forward-only mode on for the
	// lines after it, as the owner-execute bit of the file does for all.
	List
)

var kindNames = [...]string{Forward: "forward", Program: "program", Mbox: "mbox", Maildir: "maildir", List: "+list"}

// String returns the word qmail-local -n prints for the kind: "forward",
// "program", "mbox", "maildir" (and "+list").
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// An Instruction is one meaningful line of a .qmail file. Comments, blank
// lines after the first and '+' lines other than "+list" make none.
type Instruction struct {
	Kind Kind
	// Arg is what the line gives the delivery: the address of a Forward,
	// the shell command of a Program, the path of an Mbox or Maildir
	// (the whole line, "./Maildir/", relative to the home directory).
	Arg string
	// Line is the line's number in its file, counting from 1.
	Line int
}

// String returns the instruction as qmail-local -n prints it:
// "maildir ./Maildir/", "program prog arg", "forward a@b", "mbox ./Mailbox".
func (in Instruction) String() string { return in.Kind.String() + " " + in.Arg }

// ParseError is a .qmail file qmail-local refuses to execute. Every
// ParseError is temporary: qmail-local defers the message (exit 111) so that
// the user can repair the file.
type ParseError struct {
	File   string // the file's name, as given to Parse
	Line   int    // the bad line's number, from 1
	Reason string // what is wrong
	// Text is qmail-local's report text for the refusal, such as
	// "Uh-oh: first line of .qmail file is blank. (#4.2.1)".
	Text string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("dotqmail: %s:%d: %s", e.File, e.Line, e.Reason)
}

// Permanent reports false: a broken .qmail file defers mail.
func (e *ParseError) Permanent() bool { return false }

// textFirstBlank is qmail-local's refusal of a file whose first line is
// empty, which is how a file edited into an accident looks.
const textFirstBlank = "Uh-oh: first line of .qmail file is blank. (#4.2.1)"

// Parse splits the contents of a .qmail file (or a default delivery, which
// reads the same way) into instructions as qmail-local reads them: lines
// split at '\n' (a missing final '\n' is supplied), trailing spaces and
// tabs removed (not CR), the kind decided by the first byte. name is used
// only in errors.
//
// An empty first line (and so empty contents) is an error, as in
// qmail-local, and so is a line containing a NUL byte, which qmail would
// cut short at the NUL: no address, command or path can hold one.
func Parse(name string, data []byte) ([]Instruction, error) {
	if len(data) == 0 {
		// qmail-local supplies the missing newline: one blank line.
		return nil, &ParseError{File: name, Line: 1, Reason: "first line is blank", Text: textFirstBlank}
	}
	var out []Instruction
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) == 0 {
			if n == 1 {
				return nil, &ParseError{File: name, Line: n, Reason: "first line is blank", Text: textFirstBlank}
			}
			continue
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, &ParseError{File: name, Line: n, Reason: "line contains a NUL byte",
				Text: "Uh-oh: .qmail file has a NUL byte in line " + strconv.Itoa(n) + ". (#4.2.1)"}
		}
		in := Instruction{Line: n}
		switch line[0] {
		case '#':
			continue
		case '+':
			if string(line) != "+list" {
				continue
			}
			in.Kind, in.Arg = List, ""
		case '|':
			in.Kind, in.Arg = Program, string(line[1:])
		case '/', '.':
			in.Kind, in.Arg = Mbox, string(line)
			if line[len(line)-1] == '/' {
				in.Kind = Maildir
			}
		case '&':
			in.Kind, in.Arg = Forward, string(line[1:])
		default:
			in.Kind, in.Arg = Forward, string(line)
		}
		out = append(out, in)
	}
	return out, nil
}
