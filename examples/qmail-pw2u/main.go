// Command qmail-pw2u is a drop-in for qmail's qmail-pw2u: it reads a
// password file in passwd(5) format on standard input and writes an
// assign file (the input of qmail-newu) on standard output.
//
// Usage:
//
//	qmail-pw2u [-/ohHuUC] [-c char] [-home DIR] < passwd > assign
//
// Options, as qmail-pw2u's (getopt-style, so "-oC" and "-c+" work):
//
//	-o   skip accounts whose home directory is missing or not theirs (default)
//	-h   as -o, but a missing home directory is fatal
//	-H   do not look at home directories
//	-U   skip account names with upper-case letters (default)
//	-u   keep them
//	-c X use X as the extension separator (default '-'); -c '' is -C
//	-C   write no extension addresses
//	-/   write the dash "-/" (extension files .qmail-/ext)
//
// -home DIR (qmailkit's addition: an argument that qmail-pw2u itself
// rejects) gives the qmail home directory; else $QMAILHOME, else
// /var/qmail. Its users/include, users/exclude, users/mailnames,
// users/subusers and users/append are used as qmail-pw2u uses them (see
// assign.Pw2u), and relative home directories are checked relative to it.
//
// Exit 0 on success; 100 for an unknown option, with getopt's message; 111
// for anything else, with qmail-pw2u's message ("qmail-pw2u: fatal: unable
// to find alias user", "... unable to stat HOME", "... unable to read
// controls", ...).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/control"
)

func main() {
	os.Exit(run(os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

func run(argv []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	home := ""
	argv, home = takeHome(argv)
	home = control.Home(home, getenv)

	p := &assign.Pw2u{}
	brk := byte('-')
	g := getopt{argv: argv, opts: "/ohHuUc:C"}
	for {
		opt, ok := g.next()
		if !ok {
			break
		}
		switch opt {
		case '/':
			p.DashSlash = true
		case 'o':
			p.Home = assign.HomeSkip
		case 'h':
			p.Home = assign.HomeRequire
		case 'H':
			p.Home = assign.HomeIgnore
		case 'u':
			p.AllowUpper = true
		case 'U':
			p.AllowUpper = false
		case 'c':
			brk = 0
			if g.optarg != "" {
				brk = g.optarg[0]
			}
		case 'C':
			brk = 0
		default:
			fmt.Fprint(stderr, g.problem())
			return 100
		}
	}
	if brk == 0 {
		p.NoExt = true
	} else {
		p.Break = brk
	}

	fatal := func(msg string) int {
		fmt.Fprintf(stderr, "qmail-pw2u: fatal: %s\n", msg)
		return 111
	}
	if fi, err := os.Stat(home); err != nil || !fi.IsDir() || syscall.Access(home, 1) != nil {
		return fatal("unable to chdir")
	}
	p.Dir = os.DirFS(filepath.Join(home, "users"))
	p.HomeOwner = func(dir string) (int, error) {
		// qmail-pw2u runs in its home directory.
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(home, dir)
		}
		return assign.StatOwner(dir)
	}
	err := p.Convert(stdout, stdin)
	if err == nil {
		return 0
	}
	var pe *assign.Pw2uError
	if errors.As(err, &pe) {
		return fatal(pe.Text)
	}
	return fatal(err.Error())
}

// takeHome removes "-home DIR" or "-home=DIR" (also with "--") from the
// options before the first operand, which qmail's getopt would reject.
func takeHome(argv []string) ([]string, string) {
	out := []string{argv[0]}
	home := ""
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			out = append(out, argv[i:]...)
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if name == "home" {
			if hasVal {
				home = val
				continue
			}
			if i+1 < len(argv) {
				home = argv[i+1]
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out, home
}

// getopt is djb's sgetopt: options bundled or separate, an option's
// argument attached or in the next word, "--" or a non-option ends them.
type getopt struct {
	argv          []string
	opts          string
	ind, pos      int
	optarg        string
	problemc      byte
	problemMissed bool
}

func (g *getopt) next() (byte, bool) {
	if g.ind == 0 {
		g.ind = 1
	}
	g.optarg = ""
	if g.ind >= len(g.argv) {
		return 0, false
	}
	if g.pos > 0 && g.pos >= len(g.argv[g.ind]) {
		g.ind++
		g.pos = 0
		if g.ind >= len(g.argv) {
			return 0, false
		}
	}
	if g.pos == 0 {
		a := g.argv[g.ind]
		if len(a) == 0 || a[0] != '-' {
			return 0, false
		}
		g.pos = 1
		if len(a) == 1 || a[1] == '-' {
			if len(a) > 1 {
				g.ind++
			}
			g.pos = 0
			return 0, false
		}
	}
	c := g.argv[g.ind][g.pos]
	g.pos++
	for i := 0; i < len(g.opts); i++ {
		if g.opts[i] == ':' {
			continue
		}
		if g.opts[i] != c {
			continue
		}
		if i+1 < len(g.opts) && g.opts[i+1] == ':' {
			g.optarg = g.argv[g.ind][g.pos:]
			g.ind++
			g.pos = 0
			if g.optarg == "" {
				if g.ind >= len(g.argv) {
					g.problemc, g.problemMissed = c, true
					return '?', true
				}
				g.optarg = g.argv[g.ind]
				g.ind++
			}
		}
		return c, true
	}
	g.problemc = c
	return '?', true
}

// problem is sgetopt's message for the last '?'.
func (g *getopt) problem() string {
	prog := g.argv[0]
	if i := strings.LastIndexByte(prog, '/'); i >= 0 {
		prog = g.argv[0][i+1:]
	}
	if g.problemMissed {
		return prog + ": option requires an argument -- " + string(g.problemc) + "\n"
	}
	return prog + ": illegal option -- " + string(g.problemc) + "\n"
}
