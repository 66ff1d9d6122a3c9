package command

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/aliases"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/internal/inject"
)

const ffFatal = "fastforward: fatal: "

// Fastforward is "fastforward [ -nNpPdD ] data.cdb", run from a .qmail
// file: it expands the recipient through the database, runs the programs
// it finds and forwards one copy of the message ($DTLINE first) to the
// addresses, with the envelope sender possibly rewritten.
//
//	-n  only print the plan on standard error: "run CMD", "from <SENDER>",
//	    "to <ADDRESS>" or "no forwarding"
//	-N  deliver (the default)
//	-p  exit 0 for an unknown recipient and 99 after forwarding, so that
//	    qmail-local goes on, or stops, as a .qmail line wants
//	-P  bounce an unknown recipient (the default)
//	-d  the recipient is $DEFAULT@$HOST ($EXT@$HOST without $DEFAULT)
//	-D  the recipient is $RECIPIENT (the default)
//
// $SENDER (absent: "original envelope sender") and $DTLINE are read too.
func Fastforward(ctx context.Context, args []string, o IO) int {
	deliver, pass, dflt := true, false, false
	argv0 := "fastforward"
	if len(args) > 0 {
		argv0, args = args[0], args[1:]
	}
	g := inject.NewGetopt(argv0, args, "nNpPdD")
	usage := func() int {
		say(o, "fastforward: usage: fastforward [ -nNpP ] data.cdb")
		return 100
	}
	for {
		c, _, done, err := g.Next()
		if err != nil {
			var ie *inject.Error
			if errors.As(err, &ie) {
				io.WriteString(o.Stderr, ie.Text)
			}
			return usage()
		}
		if done {
			break
		}
		switch c {
		case 'n':
			deliver = false
		case 'N':
			deliver = true
		case 'p':
			pass = true
		case 'P':
			pass = false
		case 'd':
			dflt = true
		case 'D':
			dflt = false
		}
	}
	rest := g.Rest()
	if len(rest) == 0 {
		return usage()
	}
	fncdb := rest[0]
	dtline, _ := o.Getenv("DTLINE")
	sender, ok := o.Getenv("SENDER")
	if !ok {
		sender = "original envelope sender"
	}
	f, err := os.Open(fncdb)
	if err != nil {
		say(o, ffFatal+"unable to read "+fncdb+": "+errstr.Text(err))
		return 111
	}
	defer f.Close()

	var recipient string
	if dflt {
		x, ok := o.Getenv("DEFAULT")
		if !ok {
			x, ok = o.Getenv("EXT")
		}
		if !ok {
			say(o, ffFatal+"$DEFAULT or $EXT must be set")
			return 100
		}
		host, ok := o.Getenv("HOST")
		if !ok {
			say(o, ffFatal+"$HOST must be set")
			return 100
		}
		recipient = x + "@" + host
	} else if recipient, ok = o.Getenv("RECIPIENT"); !ok {
		say(o, ffFatal+"$RECIPIENT must be set")
		return 100
	}

	db, err := aliases.OpenFile(f)
	if err != nil {
		return die(o, ffFatal, err)
	}
	defer db.Close()
	plan, err := db.Expand(recipient, sender)
	if err == aliases.ErrNoMailbox {
		if pass {
			return 0
		}
		say(o, "Sorry, no mailbox here by that name. (#5.1.1)")
		return 100
	}
	for _, prog := range plan.Programs {
		if !deliver {
			say(o, "run "+printsafe(prog))
			continue
		}
		if code := runProgram(ctx, o, prog); code != 0 {
			return code
		}
	}
	if err != nil {
		return die(o, ffFatal, err)
	}
	exit := 0
	if pass {
		exit = 99
	}
	if len(plan.Targets) == 0 {
		if !deliver {
			say(o, "no forwarding")
		}
		return exit
	}
	if !deliver {
		var b strings.Builder
		b.WriteString("from <" + printsafe(plan.Sender) + ">\n")
		for _, t := range plan.Targets {
			b.WriteString("to <" + printsafe(t) + ">\n")
		}
		io.WriteString(o.Stderr, b.String())
		return exit
	}
	msg := &readErr{r: io.MultiReader(strings.NewReader(dtline), o.Stdin)}
	qp, err := o.Forwarder.Forward(ctx, plan.Sender, plan.Targets, msg)
	if msg.err != nil {
		say(o, ffFatal+"unable to read message: "+errstr.Text(msg.err))
		return 111
	}
	if err != nil {
		var fe *dotqmail.ForwardError
		text := err.Error()
		if errors.As(err, &fe) {
			text = fe.Text
		}
		say(o, ffFatal+text)
		if qmailkit.IsPermanent(err) {
			return 100
		}
		return 111
	}
	say(o, "fastforward: qp "+qp)
	return exit
}

// readErr remembers a read error of the message.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// printsafe is fastforward's: a byte below 32 is printed as "_", and so is
// one of 128 or more (a negative char).
func printsafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c >= 128 {
			b[i] = '_'
		}
	}
	return string(b)
}

// runProgram runs a "|CMD" or "!CMD" instruction as fastforward does: sh -c
// CMD, or preline sh -c CMD, found on $PATH, the message on its standard
// input, which is then rewound. It returns 0 to go on, else fastforward's
// exit code (having said why).
func runProgram(ctx context.Context, o IO, prog string) int {
	argv := []string{"sh", "-c", prog[1:]}
	if prog[0] == '!' {
		argv = append([]string{"preline"}, argv...)
	}
	path, ok := o.Getenv("PATH")
	if !ok {
		path = "/bin:/usr/bin" // execvp's default
	}
	bin, err := lookPath(argv[0], path)
	if err != nil {
		say(o, ffFatal+"unable to run "+prog+": "+errstr.Text(err))
		return 111
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = o.Env
	if o.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	if err := cmd.Start(); err != nil {
		say(o, ffFatal+"unable to run "+prog+": "+errstr.Text(err))
		return 111
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			say(o, ffFatal+"child crashed in "+prog+": "+errstr.Text(syscall.Errno(0)))
			return 111
		}
		switch ee.ExitCode() {
		case 64, 65, 70, 76, 77, 78, 100, 112:
			return 100
		}
		return 111
	} else if err != nil {
		say(o, ffFatal+"unable to run "+prog+": "+errstr.Text(err))
		return 111
	}
	if _, err := o.Stdin.Seek(0, io.SeekStart); err != nil {
		say(o, ffFatal+"unable to rewind input: "+errstr.Text(err))
		return 111
	}
	return 0
}

// lookPath finds name on path as execvp does (an empty entry is the
// current directory); the error is ENOENT when no entry has it, or the
// last other error met.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	var last error = syscall.ENOENT
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		last = syscall.EACCES
	}
	return "", last
}
