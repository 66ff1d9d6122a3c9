package control

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// ShowSettings are the compile-time settings qmail-showctl prints before
// the control files, with the ids of qmail's accounts.
type ShowSettings struct {
	// Break is the user-extension delimiter (conf-break); "" means "-".
	Break string
	// Paternalism is conf-patrn; 0 means 2.
	Paternalism int
	// SpawnLimit is the silent concurrency limit (conf-spawn); 0 means
	// 120.
	SpawnLimit int
	// Split is the queue's subdirectory split (conf-split); 0 means 23.
	Split int
	// UIDs are the uids of alias, qmaild, qmaill, root, qmailp, qmailq,
	// qmailr and qmails; GIDs the gids of nofiles and qmail.
	UIDs, GIDs []int
}

// ErrShow is the error of [Dir.Show] after its "Oops!" about the home or
// the control directory (qmail-showctl then exits 111).
var ErrShow = errors.New("control: cannot show the control files")

// showFile is one block of qmail-showctl's report.
type showFile struct {
	kind      byte // 'l' list, 's' string, 'i' integer, 'm' the morercpthosts.cdb check
	name      string
	flagMe    bool
	def       string
	pre, post string
}

// showFiles is qmail-showctl's table, in its order.
func showFiles() []showFile {
	return []showFile{
		{'l', "badmailfrom", false, "Any MAIL FROM is allowed.", "", " not accepted in MAIL FROM."},
		{'s', "bouncefrom", false, "MAILER-DAEMON", "Bounce user name is ", ""},
		{'s', "bouncehost", true, "bouncehost", "Bounce host name is ", ""},
		{'i', "concurrencylocal", false, "10", "Local concurrency is ", ""},
		{'i', "concurrencyremote", false, "20", "Remote concurrency is ", ""},
		{'i', "databytes", false, "0", "SMTP DATA limit is ", " bytes"},
		{'s', "defaultdomain", true, "defaultdomain", "Default domain name is ", ""},
		{'s', "defaulthost", true, "defaulthost", "Default host name is ", ""},
		{'s', "doublebouncehost", true, "doublebouncehost", "2B recipient host: ", ""},
		{'s', "doublebounceto", false, "postmaster", "2B recipient user: ", ""},
		{'s', "envnoathost", true, "envnoathost", "Presumed domain name is ", ""},
		{'s', "helohost", true, "helohost", "SMTP client HELO host name is ", ""},
		{'s', "idhost", true, "idhost", "Message-ID host name is ", ""},
		{'s', "localiphost", true, "localiphost", "Local IP address becomes ", ""},
		{'l', "locals", false, "Messages for me are delivered locally.", "Messages for ", " are delivered locally."},
		{'s', "me", false, "undefined! Uh-oh", "My name is ", ""},
		{'l', "percenthack", false, "The percent hack is not allowed.", "The percent hack is allowed for user%host@", "."},
		{'s', "plusdomain", true, "plusdomain", "Plus domain name is ", ""},
		{'l', "qmqpservers", false, "No QMQP servers.", "QMQP server: ", "."},
		{'i', "queuelifetime", false, "604800", "Message lifetime in the queue is ", " seconds"},
		{'l', "rcpthosts", false, "SMTP clients may send messages to any recipient.", "SMTP clients may send messages to recipients at ", "."},
		{'l', "morercpthosts", false, "", "", ""}, // decided by rcpthosts
		{'m', "morercpthosts.cdb", false, "", "", ""},
		{'s', "smtpgreeting", true, "smtpgreeting", "SMTP greeting: 220 ", ""},
		{'l', "smtproutes", false, "No artificial SMTP routes.", "SMTP route: ", ""},
		{'i', "timeoutconnect", false, "60", "SMTP client connection timeout is ", " seconds"},
		{'i', "timeoutremote", false, "1200", "SMTP client data timeout is ", " seconds"},
		{'i', "timeoutsmtpd", false, "1200", "SMTP server data timeout is ", " seconds"},
		{'l', "virtualdomains", false, "No virtual domains.", "Virtual domain: ", ""},
	}
}

// Show writes qmail-showctl's report on the home's settings and control
// files to w, byte for byte as qmail-showctl prints it (qmail-showctl(8)):
// the settings s; then, per known control file in qmail-showctl's order,
// an empty line, "NAME: " and what the file says (or "(Default.) " and
// what its absence means); then "NAME: I have no idea what this file
// does." for every other entry of the control directory, in the order the
// directory lists them. Bytes outside 32-126 in values print as '?'. A
// file that cannot be read prints "Oops! Trouble reading this file.".
//
// When the home or its control directory cannot be entered or read, or
// control/me cannot be read, Show writes qmail-showctl's "Oops!" line and
// returns an error wrapping [ErrShow]. Errors writing to w are returned.
func (d Dir) Show(w io.Writer, s ShowSettings) error {
	bw := bufio.NewWriter(w)
	showHeader(bw, d.Home, s)
	err := d.showFiles(bw)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

func showHeader(w *bufio.Writer, home string, s ShowSettings) {
	or := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	brk := s.Break
	if brk == "" {
		brk = "-"
	}
	w.WriteString("qmail home directory: " + home + ".\n")
	w.WriteString("user-ext delimiter: " + brk + ".\n")
	w.WriteString("paternalism (in decimal): " + strconv.Itoa(or(s.Paternalism, 2)) + ".\n")
	w.WriteString("silent concurrency limit: " + strconv.Itoa(or(s.SpawnLimit, 120)) + ".\n")
	w.WriteString("subdirectory split: " + strconv.Itoa(or(s.Split, 23)) + ".\n")
	ids := func(label string, ids []int) {
		w.WriteString(label)
		for i, id := range ids {
			if i > 0 {
				w.WriteString(", ")
			}
			w.WriteString(strconv.FormatUint(uint64(uint32(id)), 10))
		}
		w.WriteString(".\n")
	}
	ids("user ids: ", s.UIDs)
	ids("group ids: ", s.GIDs)
}

func (d Dir) showFiles(w *bufio.Writer) error {
	if CanChdir(d.Home) != nil {
		w.WriteString("Oops! Unable to chdir to " + d.Home + ".\n")
		return ErrShow
	}
	ctl := filepath.Join(d.Home, "control")
	if CanChdir(ctl) != nil {
		w.WriteString("Oops! Unable to chdir to control.\n")
		return ErrShow
	}
	dir, err := os.Open(ctl)
	if err != nil {
		w.WriteString("Oops! Unable to open current directory.\n")
		return ErrShow
	}
	defer dir.Close()
	me, meOK, err := showLine(ctl, "me")
	if err != nil {
		w.WriteString("Oops! Trouble reading control/me.") // sic: no newline
		return ErrShow
	}
	known := map[string]bool{}
	rcpthosts := 0
	for _, f := range showFiles() {
		known[f.name] = true
		w.WriteString("\n" + f.name + ": ")
		switch f.kind {
		case 's':
			line, ok, err := showLine(ctl, f.name)
			switch {
			case err != nil:
				w.WriteString("Oops! Trouble reading this file.\n")
				continue
			case !ok:
				w.WriteString("(Default.) ")
				line = []byte(f.def)
				if f.flagMe && meOK {
					line = me
				}
			}
			w.WriteString(f.pre)
			showSafe(w, line)
			w.WriteString(".\n")
		case 'i':
			showInt(w, ctl, f)
		case 'l':
			if f.name == "morercpthosts" {
				f.def, f.pre, f.post = "No effect.", "SMTP clients may send messages to recipients at ", "."
				if rcpthosts == 0 {
					f.def, f.pre = "No rcpthosts; morercpthosts is irrelevant.", "No rcpthosts; doesn't matter that morercpthosts has "
				}
			}
			r := showList(w, ctl, f)
			if f.name == "rcpthosts" {
				rcpthosts = r
			}
		case 'm':
			w.WriteString(showMoreRcptHostsCDB(ctl) + "\n")
		}
	}
	ents, err := dir.ReadDir(-1) // directory order, as readdir(3) gives it
	for _, e := range ents {
		if !known[e.Name()] {
			w.WriteString("\n" + e.Name() + ": I have no idea what this file does.\n")
		}
	}
	return nil
}

// showLine is control_readline: the first line, trailing spaces, tabs and
// LF removed; ok false for a missing file.
func showLine(dir, name string) (line []byte, ok bool, err error) {
	f, err := openNonblock(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	l, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return nil, false, err
	}
	return []byte(stripTrailing(string(l))), true, nil
}

// showInt prints an integer block: control_readint's value (leading
// digits of the first line, wrapping as scan_ulong does, then stored in a
// 32-bit int: negative shows as 0).
func showInt(w *bufio.Writer, dir string, f showFile) {
	line, ok, err := showLine(dir, f.name)
	if err != nil {
		w.WriteString("Oops! Trouble reading this file.\n")
		return
	}
	var u uint64
	n := 0
	for ; ok && n < len(line) && line[n] >= '0' && line[n] <= '9'; n++ {
		u = u*10 + uint64(line[n]-'0')
	}
	if n == 0 {
		w.WriteString("(Default.) " + f.pre + f.def + f.post + ".\n")
		return
	}
	i := max(int32(uint32(u)), 0)
	w.WriteString(f.pre + strconv.Itoa(int(i)) + f.post + ".\n")
}

// showList prints a list block and returns control_readfile's result: 0
// for a missing file, 1 for one read, -1 for a read error. Each line is
// stripped of trailing spaces, tabs and LF and kept unless it then starts
// with NUL or '#'; a NUL inside a kept line starts another entry, possibly
// an empty one (qmail-showctl prints entries between NULs).
func showList(w *bufio.Writer, dir string, f showFile) int {
	data, err := readNonblock(filepath.Join(dir, f.name))
	if errors.Is(err, fs.ErrNotExist) {
		w.WriteString("(Default.) " + f.def + "\n")
		return 0
	}
	if err != nil {
		w.WriteString("Oops! Trouble reading this file.\n")
		return -1
	}
	w.WriteString("\n")
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		line = []byte(stripTrailing(string(line)))
		if len(line) == 0 || line[0] == 0 || line[0] == '#' {
			continue
		}
		for _, e := range bytes.Split(line, []byte{0}) {
			w.WriteString(f.pre)
			showSafe(w, e)
			w.WriteString(f.post + "\n")
		}
	}
	return 1
}

// openNonblock opens a control file for reading without blocking: a FIFO
// there reads as empty instead of hanging the report (qmail-showctl
// would wait for a writer).
func openNonblock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// readNonblock is os.ReadFile with openNonblock.
func readNonblock(path string) ([]byte, error) {
	f, err := openNonblock(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// showMoreRcptHostsCDB compares morercpthosts with its cdb by existence
// and modification time (seconds).
func showMoreRcptHostsCDB(dir string) string {
	txt, terr := os.Stat(filepath.Join(dir, "morercpthosts"))
	db, derr := os.Stat(filepath.Join(dir, "morercpthosts.cdb"))
	switch {
	case terr != nil && derr != nil:
		return "(Default.) No effect."
	case terr != nil:
		return "Oops! morercpthosts.cdb exists but morercpthosts doesn't."
	case derr != nil:
		return "Oops! morercpthosts exists but morercpthosts.cdb doesn't."
	case txt.ModTime().Unix() > db.ModTime().Unix():
		return "Oops! morercpthosts.cdb is older than morercpthosts."
	}
	return "Modified recently enough; hopefully up to date."
}

// showSafe writes b with every byte outside 32-126 as '?'.
func showSafe(w *bufio.Writer, b []byte) {
	for _, c := range b {
		if c < 32 || c > 126 {
			c = '?'
		}
		w.WriteByte(c)
	}
}
