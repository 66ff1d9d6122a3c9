package command

import (
	"github.com/qmailkit/qmailkit/aliases"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/errstr"
)

// Newaliases is newaliases (Debian: qmail-newaliases). It ignores its
// arguments, reads the controls of $QMAILHOME (else /var/qmail), compiles
// the aliases file src into the database dst through tmp, and exits 0
// silently. The program passes /etc/aliases, /etc/aliases.tmp and
// /etc/aliases.cdb, as newaliases' paths are fixed; it also sets the umask
// to 033 first, as newaliases does.
func Newaliases(src, tmp, dst string, o IO) int {
	const fatal = "newaliases: fatal: "
	home, _ := o.Getenv("QMAILHOME")
	c, err := aliases.LoadControls(control.Home("", func(string) string { return home }))
	if err != nil {
		return die(o, fatal, err)
	}
	if err := aliases.CompileFile(src, tmp, dst, c); err != nil {
		return die(o, fatal, err)
	}
	return 0
}

// Setforward is "setforward data.cdb data.tmp": it compiles standard
// input into the database.
func Setforward(args []string, o IO) int {
	if len(args) < 3 {
		say(o, "setforward: usage: setforward data.cdb data.tmp")
		return 100
	}
	if err := aliases.CompileForward(o.Stdin, args[2], args[1]); err != nil {
		return die(o, "setforward: fatal: ", err)
	}
	return 0
}

// Setmaillist is "setmaillist list.bin list.tmp": it compiles the list on
// standard input into a binary list. The program sets the umask to 033
// first, as setmaillist does.
func Setmaillist(args []string, o IO) int {
	if len(args) < 3 {
		say(o, "setmaillist: usage: setmaillist list.bin list.tmp")
		return 100
	}
	if err := aliases.CompileMaillist(o.Stdin, args[2], args[1]); err != nil {
		return die(o, "setmaillist: fatal: ", err)
	}
	return 0
}

// Printforward prints the database on standard input in setforward's
// syntax. Its messages start "printmaillist: fatal: ", as the original's.
func Printforward(o IO) int {
	out := &smallOut{w: o.Stdout, bytewise: true}
	in := &smallIn{r: o.Stdin, out: out}
	return finishPrint(o, out, aliases.PrintForward(out, in))
}

// Printmaillist prints the binary list on standard input, an entry a line.
func Printmaillist(o IO) int {
	out := &smallOut{w: o.Stdout}
	in := &smallIn{r: o.Stdin, out: out}
	return finishPrint(o, out, aliases.PrintMaillist(out, in, 0))
}

// finishPrint flushes the output after success; after a failure it is
// lost, as the originals die without flushing.
func finishPrint(o IO, out *smallOut, err error) int {
	const fatal = "printmaillist: fatal: "
	if err != nil {
		return die(o, fatal, err)
	}
	if err := out.flush(); err != nil {
		say(o, fatal+"unable to write output: "+errText(err))
		return 111
	}
	return 0
}

func errText(err error) string { return errstr.Text(err) }
