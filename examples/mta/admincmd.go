package main

// The administration commands for virtual domains, mailboxes and aliases:
//
//	mta [-home DIR] domain add DOMAIN [-catchall TARGET]
//	mta [-home DIR] domain del DOMAIN
//	mta [-home DIR] domain list [-json]
//	mta [-home DIR] user add ADDRESS [-quota QUOTA] [-name REALNAME]
//	mta [-home DIR] user del ADDRESS
//	mta [-home DIR] user passwd ADDRESS
//	mta [-home DIR] user quota ADDRESS QUOTA
//	mta [-home DIR] user list DOMAIN|ADDRESS [-json]
//	mta [-home DIR] alias add ADDRESS TARGET...
//	mta [-home DIR] alias del ADDRESS [TARGET...]
//	mta [-home DIR] alias list DOMAIN|ADDRESS [-json]
//	mta [-home DIR] import vpopmail VPOPHOME
//	mta [-home DIR] import poppasswd DOMAIN FILE
//	mta [-home DIR] import assign FILE
//
// import brings an existing installation in: vpopmail's domains (their
// vpasswd files with the password hashes, flags, quotas and Maildirs where
// they are, .qmail-default catch-alls, forward-only .qmail-NAME aliases,
// alias domains, .qmailadmin-limits), the users of a users/poppasswd file
// as mailboxes of DOMAIN, or the alias domains of a users/assign file. It
// prints what it imported and each line it skipped, with file and line, and
// may be run again (what exists is left as it is). As root it reads the
// files as root; the Maildirs stay where they are, so they must belong to
// the mta's account (run the mta with -user vpopmail, or chown them).
//
// They work on the home's virtual-mail store (QMAILHOME/vmail/vmail.db,
// or the PostgreSQL database named by control/vmaildb) and the domains'
// directories under QMAILHOME/vmail/domains, while the mta runs or not:
// a running mta sees a change within a second, without a restart or a
// signal. As root they run as the mta's account (the owner of
// QMAILHOME/queue), so that what they make is the account's.
//
// user add and user passwd read the password as one line from standard
// input, never from the command line (where other users could read it
// in the process list); on a terminal they ask twice without echo. A
// quota is a size with an optional K or M suffix, a count with a C suffix,
// both separated by a comma (50M, 10M,500C, 1000C), or NOQUOTA. A
// catch-all TARGET is an address, "@other.example" (every local part to
// another domain), or "delete" (accept and discard).
//
// list prints one line per record, or with -json one JSON object per line:
// domains {"domain", "dir", "catchall", "aliases", "mailboxes"}, mailboxes
// {"address", "name", "dir", "quota", "flags", "forward", "keep_copy",
// "autoresponder", "last_login"}, aliases {"address", "targets"}.
//
// Exit status: 0 done; 1 refused (an invalid address, domain, password or
// quota, a mailbox or domain that exists already or does not exist, a
// domain limit), with the reason on standard error; 2 usage; 111 a
// temporary failure (the database cannot be reached).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/mta/privsep"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/vimport"
)

const adminUsage = `usage: mta [-home DIR] domain add DOMAIN [-catchall TARGET]
       mta [-home DIR] domain del DOMAIN
       mta [-home DIR] domain list [-json]
       mta [-home DIR] user add ADDRESS [-quota QUOTA] [-name REALNAME]   (password on standard input)
       mta [-home DIR] user del ADDRESS
       mta [-home DIR] user passwd ADDRESS                               (password on standard input)
       mta [-home DIR] user quota ADDRESS QUOTA
       mta [-home DIR] user list DOMAIN|ADDRESS [-json]
       mta [-home DIR] alias add ADDRESS TARGET...
       mta [-home DIR] alias del ADDRESS [TARGET...]
       mta [-home DIR] alias list DOMAIN|ADDRESS [-json]
       mta [-home DIR] import vpopmail VPOPHOME
       mta [-home DIR] import poppasswd DOMAIN FILE
       mta [-home DIR] import assign FILE
`

// adminTimeout bounds one administration command.
const adminTimeout = time.Minute

// adminCommand runs "mta NOUN VERB ARGS" (NOUN domain, user or alias) on
// home's virtual-mail store and returns the exit status.
func adminCommand(home, noun string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name := "mta " + noun
	usage := func(msg string) int {
		if msg != "" {
			fmt.Fprintln(stderr, name+": "+msg)
		}
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	if home == "" {
		return usage("no -home, $QMAILHOME or $HOME")
	}
	if len(args) == 0 {
		return usage("")
	}
	verb := args[0]
	name += " " + verb
	if noun == "import" {
		return importCommand(home, name, verb, args[1:], stdout, stderr, usage)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "one JSON object per line")
	var catchall, quota, realName *string
	switch noun + " " + verb {
	case "domain add":
		catchall = fs.String("catchall", "", "where mail for unknown local parts goes: an address, @domain, or delete (default: refused)")
	case "user add":
		quota = fs.String("quota", "", "the mailbox's quota (default: the domain's)")
		realName = fs.String("name", "", "the mailbox owner's real name")
	}
	if err := fs.Parse(interspersed(fs, args[1:])); err != nil {
		return 2
	}
	operands := fs.Args()
	want := map[string][2]int{ // operands: min, max (-1: any)
		"domain add": {1, 1}, "domain del": {1, 1}, "domain list": {0, 0},
		"user add": {1, 1}, "user del": {1, 1}, "user passwd": {1, 1}, "user quota": {2, 2}, "user list": {1, 1},
		"alias add": {2, -1}, "alias del": {1, -1}, "alias list": {1, 1},
	}
	n, ok := want[noun+" "+verb]
	if !ok {
		return usage("unknown subcommand " + verb)
	}
	if len(operands) < n[0] || (n[1] >= 0 && len(operands) > n[1]) {
		return usage("wrong number of operands")
	}
	if *asJSON && verb != "list" {
		return usage("-json is for list")
	}
	// Read the password before anything slow, and before dropping root
	// (the terminal may be root's).
	var password string
	if verb == "add" && noun == "user" || verb == "passwd" {
		var err error
		if password, err = readPassword(stdin, stderr); err != nil {
			fmt.Fprintln(stderr, name+": "+err.Error())
			return 1
		}
	}
	if err := asMailAccount(home); err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 111
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	// The Manager's own log lines: warnings only, on standard error.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := mta.OpenVirtual(ctx, home, vmail.Options{Logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 111
	}
	defer m.Store().Close()
	c := &adminCmd{m: m, stdout: stdout, json: *asJSON}
	switch noun + " " + verb {
	case "domain add":
		_, err = m.AddDomain(ctx, operands[0])
		if err == nil && *catchall != "" {
			err = m.SetCatchAll(ctx, operands[0], *catchall)
		}
	case "domain del":
		err = m.DeleteDomain(ctx, operands[0])
	case "domain list":
		err = c.domains(ctx)
	case "user add":
		var q vmail.Quota
		if *quota != "" {
			if q, err = vmail.ParseQuota(*quota); err != nil {
				break
			}
		}
		if _, err = m.AddMailbox(ctx, operands[0], password); err != nil {
			break
		}
		if *quota != "" {
			err = m.SetQuota(ctx, operands[0], q)
		}
		if err == nil && *realName != "" {
			err = m.SetRealName(ctx, operands[0], *realName)
		}
	case "user del":
		err = m.DeleteMailbox(ctx, operands[0])
	case "user passwd":
		err = m.SetPassword(ctx, operands[0], password)
	case "user quota":
		var q vmail.Quota
		if q, err = vmail.ParseQuota(operands[1]); err == nil {
			err = m.SetQuota(ctx, operands[0], q)
		}
	case "user list":
		err = c.mailboxes(ctx, operands[0])
	case "alias add":
		err = m.AddAlias(ctx, operands[0], operands[1:]...)
	case "alias del":
		err = m.DeleteAlias(ctx, operands[0], operands[1:]...)
	case "alias list":
		err = c.aliases(ctx, operands[0])
	}
	if err != nil {
		for _, refused := range []error{vmail.ErrInvalid, vmail.ErrExists, vmail.ErrNotFound, vmail.ErrLimit} {
			if errors.Is(err, refused) {
				fmt.Fprintln(stderr, name+": "+refusal(operands, err))
				return 1
			}
		}
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 111
	}
	return 0
}

// refusal words a refused operation's error for the command line: the
// operand it is about and the reason, without the layers' prefixes
// ("example.com: already exists", "joe@example.com: invalid: password too
// short (min=8)").
func refusal(operands []string, err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "vmail: "); i >= 0 {
		msg = msg[i+len("vmail: "):]
	}
	if len(operands) > 0 && !strings.Contains(msg, operands[0]) {
		msg = operands[0] + ": " + msg
	}
	return msg
}

// interspersed moves the flags of args (as fs knows them) before the
// operands, so that "user add joe@example.com -quota 50M" parses as
// "user add -quota 50M joe@example.com". "--" ends the flags.
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, operands []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			operands = append(operands, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return append(append(flags, "--"), operands...)
}

// readPassword reads a new password: on a terminal, asked twice without
// echo; otherwise one line of stdin (its line end removed).
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			quiet := *t
			quiet.Lflag &^= unix.ECHO
			quiet.Lflag |= unix.ICANON | unix.ECHONL
			if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &quiet); err != nil {
				return "", fmt.Errorf("terminal: %w", err)
			}
			defer unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
			r := bufio.NewReader(f)
			fmt.Fprint(stderr, "New password: ")
			p1, err := readLine(r)
			if err != nil {
				return "", err
			}
			fmt.Fprint(stderr, "Again: ")
			p2, err := readLine(r)
			if err != nil {
				return "", err
			}
			if p1 != p2 {
				return "", errors.New("the two passwords differ")
			}
			return p1, nil
		}
	}
	return readLine(bufio.NewReader(stdin))
}

// readLine reads one line of at most auth.MaxPasswordLength bytes.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := r.ReadByte()
		if err == io.EOF && len(b) > 0 {
			break
		}
		if err == io.EOF {
			return "", errors.New("no password on standard input (one line is read)")
		}
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if c == '\n' {
			break
		}
		if len(b) > auth.MaxPasswordLength {
			return "", fmt.Errorf("password longer than %d bytes", auth.MaxPasswordLength)
		}
		b = append(b, c)
	}
	s := strings.TrimSuffix(string(b), "\r")
	if s == "" {
		return "", errors.New("empty password")
	}
	return s, nil
}

// asMailAccount, as root, makes QMAILHOME/vmail and vmail/domains the
// mta's account's when they are missing (mta.MakeVirtualDir) and becomes
// that account (the owner of QMAILHOME/queue), so that the store and the
// directories are the account's, as the running mta's. Not as root, or with no queue yet, it does nothing.
func asMailAccount(home string) error {
	if os.Getuid() != 0 {
		return nil
	}
	fi, err := os.Stat(filepath.Join(home, "queue"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	if err := mta.MakeVirtualDir(home, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return privsep.Drop(int(st.Uid), int(st.Gid))
}

type adminCmd struct {
	m      *vmail.Manager
	stdout io.Writer
	json   bool
}

func (c *adminCmd) emit(v any, line string) error {
	if c.json {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		line = string(b)
	}
	_, err := fmt.Fprintln(c.stdout, line)
	return err
}

func (c *adminCmd) domains(ctx context.Context) error {
	ds, err := c.m.Domains(ctx)
	if err != nil {
		return err
	}
	for _, d := range ds {
		n, err := c.m.Store().CountMailboxes(ctx, d.Name)
		if err != nil {
			return err
		}
		aliases := d.Aliases
		if aliases == nil {
			aliases = []string{}
		}
		line := fmt.Sprintf("%s\t%d mailboxes", d.Name, n)
		if len(aliases) > 0 {
			line += "\taliases " + strings.Join(aliases, ",")
		}
		if d.CatchAll != "" {
			line += "\tcatch-all " + d.CatchAll
		}
		err = c.emit(struct {
			Domain    string   `json:"domain"`
			Dir       string   `json:"dir"`
			CatchAll  string   `json:"catchall"`
			Aliases   []string `json:"aliases"`
			Mailboxes int      `json:"mailboxes"`
		}{d.Name, d.Dir, d.CatchAll, aliases, n}, line)
		if err != nil {
			return err
		}
	}
	return nil
}

// flagNames are the flags list shows, by name.
var flagNames = []struct {
	f    vmail.Flags
	name string
}{
	{vmail.NoPasswordChange, "no-password-change"}, {vmail.NoPOP, "no-pop"}, {vmail.NoWebmail, "no-webmail"},
	{vmail.NoIMAP, "no-imap"}, {vmail.BounceMail, "bounce-mail"}, {vmail.NoRelay, "no-relay"},
	{vmail.NoDialup, "no-dialup"}, {vmail.NoSMTP, "no-smtp"}, {vmail.DomainAdmin, "domain-admin"},
	{vmail.Override, "override"}, {vmail.SystemAdmin, "system-admin"},
}

func (c *adminCmd) mailboxes(ctx context.Context, arg string) error {
	if strings.Contains(arg, "@") {
		mb, err := c.m.Mailbox(ctx, arg)
		if err != nil {
			return err
		}
		return c.printMailboxes([]vmail.Mailbox{mb})
	}
	if _, err := c.m.Domain(ctx, arg); err != nil {
		return err
	}
	for after := ""; ; {
		page, err := c.m.Mailboxes(ctx, arg, after, 1000)
		if err != nil || len(page) == 0 {
			return err
		}
		if err := c.printMailboxes(page); err != nil {
			return err
		}
		after = page[len(page)-1].Name
	}
}

func (c *adminCmd) printMailboxes(mbs []vmail.Mailbox) error {
	for _, mb := range mbs {
		flags := []string{}
		for _, f := range flagNames {
			if mb.Flags&f.f != 0 {
				flags = append(flags, f.name)
			}
		}
		forward := mb.Forward.To
		if forward == nil {
			forward = []string{}
		}
		quota := mb.Quota.String()
		shown := quota
		if shown == "" {
			shown = "NOQUOTA"
		}
		var last string
		if !mb.LastLogin.IsZero() {
			last = mb.LastLogin.UTC().Format(time.RFC3339)
		}
		line := fmt.Sprintf("%s\tquota %s", mb.Address(), shown)
		if len(flags) > 0 {
			line += "\t" + strings.Join(flags, ",")
		}
		if len(forward) > 0 {
			line += "\tforward " + strings.Join(forward, ",")
		}
		if mb.Autoresponder.Enabled {
			line += "\tautoresponder"
		}
		err := c.emit(struct {
			Address       string   `json:"address"`
			Name          string   `json:"name"`
			Dir           string   `json:"dir"`
			Quota         string   `json:"quota"`
			Flags         []string `json:"flags"`
			Forward       []string `json:"forward"`
			KeepCopy      bool     `json:"keep_copy"`
			Autoresponder bool     `json:"autoresponder"`
			LastLogin     string   `json:"last_login,omitempty"`
		}{mb.Address(), mb.RealName, mb.Dir, quota, flags, forward, mb.Forward.KeepCopy, mb.Autoresponder.Enabled, last}, line)
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *adminCmd) aliases(ctx context.Context, arg string) error {
	var as []vmail.Alias
	if strings.Contains(arg, "@") {
		a, err := c.m.Alias(ctx, arg)
		if err != nil {
			return err
		}
		as = []vmail.Alias{a}
	} else {
		var err error
		if as, err = c.m.Aliases(ctx, arg); err != nil {
			return err
		}
	}
	for _, a := range as {
		addr := a.Name + "@" + a.Domain
		err := c.emit(struct {
			Address string   `json:"address"`
			Targets []string `json:"targets"`
		}{addr, a.Targets}, addr+"\t"+strings.Join(a.Targets, ","))
		if err != nil {
			return err
		}
	}
	return nil
}

// importCommand runs "mta import VERB ARGS".
func importCommand(home, name, verb string, args []string, stdout, stderr io.Writer, usage func(string) int) int {
	want := map[string]int{"vpopmail": 1, "poppasswd": 2, "assign": 1}
	n, ok := want[verb]
	if !ok {
		return usage("unknown subcommand " + verb)
	}
	if len(args) != n {
		return usage("wrong number of operands")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// As root the files to import are read as root (vpopmail's are its
	// own); OpenVirtual gives what it makes to the mta's account.
	m, err := mta.OpenVirtual(ctx, home, vmail.Options{Logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 111
	}
	defer m.Store().Close()
	var r *vimport.Report
	switch verb {
	case "vpopmail":
		r, err = vimport.Vpopmail(ctx, m, args[0])
	case "poppasswd":
		r, err = vimport.Poppasswd(ctx, m, args[0], args[1])
	case "assign":
		r, err = vimport.Assign(ctx, m, args[0])
	}
	if r != nil {
		fmt.Fprint(stdout, r.String())
	}
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 111
	}
	return 0
}
