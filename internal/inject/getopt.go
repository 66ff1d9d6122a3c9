package inject

import "strings"

// getopt is djb's sgetopt/subgetopt: options end at the first argument not
// starting with "-", at a lone "-" (kept) or at an argument starting with
// "--" (consumed); letters may be bundled; a letter followed by ":" in opts
// takes the rest of its argument or the next one.
type getopt struct {
	prog string // basename of argv[0], for messages
	args []string
	opts string
	ind  int // next argument (args excludes argv[0]: ind 0 is argv[1])
	pos  int // position inside args[ind]; 0 between arguments
}

func newGetopt(argv0 string, args []string, opts string) *getopt {
	return &getopt{prog: progName(argv0), args: args, opts: opts}
}

// progName is sgetopt's program name: argv[0] after its last "/".
func progName(argv0 string) string {
	return argv0[strings.LastIndexByte(argv0, '/')+1:]
}

// next returns the next option letter and its argument, done at the end of
// the options, or a *Error (exit 100) with getopt's message for an unknown
// letter or a missing argument.
func (g *getopt) next() (c byte, arg string, done bool, err error) {
	if g.ind >= len(g.args) {
		return 0, "", true, nil
	}
	if g.pos > 0 && g.pos >= len(g.args[g.ind]) {
		g.ind++
		g.pos = 0
		if g.ind >= len(g.args) {
			return 0, "", true, nil
		}
	}
	if g.pos == 0 {
		a := g.args[g.ind]
		if a == "" || a[0] != '-' {
			return 0, "", true, nil
		}
		if len(a) == 1 || a[1] == '-' {
			if len(a) > 1 {
				g.ind++
			}
			return 0, "", true, nil
		}
		g.pos = 1
	}
	c = g.args[g.ind][g.pos]
	g.pos++
	i := strings.IndexByte(g.opts, c)
	if c == ':' || i < 0 {
		return c, "", false, g.problem(c)
	}
	if i+1 < len(g.opts) && g.opts[i+1] == ':' {
		arg = g.args[g.ind][g.pos:]
		g.ind++
		g.pos = 0
		if arg == "" {
			if g.ind >= len(g.args) {
				return c, "", false, g.problem(c)
			}
			arg = g.args[g.ind]
			g.ind++
		}
	}
	return c, arg, false, nil
}

// problem is sgetopt's message: "illegal option" while arguments remain,
// else "option requires an argument".
func (g *getopt) problem(c byte) error {
	msg := ": illegal option -- "
	if g.ind >= len(g.args) {
		msg = ": option requires an argument -- "
	}
	return &Error{Text: g.prog + msg + string([]byte{c}) + "\n", Perm: true}
}

// rest returns the arguments after the options.
func (g *getopt) rest() []string {
	if g.pos > 0 && g.ind < len(g.args) && g.pos >= len(g.args[g.ind]) {
		return g.args[g.ind+1:]
	}
	return g.args[g.ind:]
}

// skipArg drops the rest of the current argument (sendmail's -E and -J).
func (g *getopt) skipArg() {
	if g.ind < len(g.args) && g.pos > 0 {
		g.pos = len(g.args[g.ind])
	}
}

// ParseArgs parses qmail-inject's command line (without argv[0], which
// names the program in getopt's messages) the way it does: "-f" arguments
// are rewritten as they come (an unparsable one is an error there), an
// unknown letter is "illegal option -- X". Errors are *Error, exit 100.
func (in *Injector) ParseArgs(argv0 string, args []string) (Options, error) {
	var o Options
	g := newGetopt(argv0, args, "aAhHnNf:")
	for {
		c, arg, done, err := g.next()
		if err != nil {
			return o, err
		}
		if done {
			break
		}
		switch c {
		case 'a':
			o.Strategy = ArgsOnly
		case 'A':
			o.Strategy = Default
		case 'h':
			o.Strategy = HeaderOnly
		case 'H':
			o.Strategy = ArgsAndHeader
		case 'n':
			o.Print = true
		case 'N':
			o.Print = false
		case 'f':
			s, err := in.Sender(arg)
			if err != nil {
				return o, err
			}
			o.Sender, o.HasSender = s, true
		}
	}
	o.Args = g.rest()
	return o, nil
}
