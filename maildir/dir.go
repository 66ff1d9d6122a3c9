package maildir

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// Dir is a Maildir: the path of its root directory, which holds tmp/, new/
// and cur/. The zero value is not usable; a Dir is a plain string, so
// Dir("/home/joe/Maildir") works as well as the result of [Create] or
// [Open].
type Dir string

var subdirs = [...]string{"tmp", "new", "cur"}

// Create makes a new Maildir at path: the directory and its tmp/, new/ and
// cur/ subdirectories, each mode 0700, as maildirmake does.
//
// When path is already a complete Maildir, Create returns the Dir and an
// error wrapping [fs.ErrExist]. When path exists but lacks one of the three
// subdirectories (a half-made Maildir, or some other directory), Create
// changes nothing and returns an error naming what is missing; that error
// does not wrap fs.ErrExist. When making a subdirectory fails, Create
// removes the directories it made. Create does not make missing parents.
// A program that wants a Maildir ready whether or not it exists, parents
// included, calls [Ensure].
func Create(path string) (Dir, error) {
	d := Dir(path)
	err := os.Mkdir(path, 0o700)
	if errors.Is(err, fs.ErrExist) {
		if oerr := d.check(); oerr != nil {
			return "", fmt.Errorf("maildir: create %s: exists but is not a complete maildir: %w", path, oerr)
		}
		return d, fmt.Errorf("maildir: create %s: %w", path, err)
	}
	if err != nil {
		return "", fmt.Errorf("maildir: create: %w", err)
	}
	for i, s := range subdirs {
		if err := os.Mkdir(filepath.Join(path, s), 0o700); err != nil {
			for _, made := range subdirs[:i] {
				os.Remove(filepath.Join(path, made))
			}
			os.Remove(path)
			return "", fmt.Errorf("maildir: create: %w", err)
		}
	}
	// Make the new entries durable: the three subdirectories inside path,
	// and path inside its parent.
	if err := durable.SyncDir(path); err != nil {
		return "", fmt.Errorf("maildir: create: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("maildir: create: %w", err)
	}
	return d, nil
}

// Open checks that path is a Maildir (a directory holding the directories
// tmp, new and cur, none of them a symbolic link) and returns it. Path
// itself may be a symbolic link.
func Open(path string) (Dir, error) {
	d := Dir(path)
	if err := d.check(); err != nil {
		return "", fmt.Errorf("maildir: open %s: %w", path, err)
	}
	return d, nil
}

// check reports which of tmp, new and cur are missing or not directories.
func (d Dir) check() error {
	var missing []string
	for _, s := range subdirs {
		fi, err := os.Lstat(filepath.Join(string(d), s))
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			missing = append(missing, s+" (a symbolic link, not followed)")
		case err == nil && !fi.IsDir():
			missing = append(missing, s+" (not a directory)")
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, s)
		case err != nil:
			return err
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Message is a message file in new/ or cur/ as a listing found it.
type Message struct {
	// Name is the file name in Subdir: the unique name, and in cur/
	// usually ':' and the info.
	Name string
	// Subdir is "new" or "cur".
	Subdir string
	// Size is the size of the message in bytes (see [Dir.List] and
	// [Dir.Scan] for where it comes from).
	Size int64
	// ModTime is the file's modification time, the delivery time. It is
	// zero in a [Dir.Scan] listing.
	ModTime time.Time
}

// Unique returns the message's unique name: its POP3 UIDL, which stays the
// same when the message moves to cur/ or its flags change.
func (m Message) Unique() string { return Unique(m.Name) }

// Flags returns the message's info flags (none for a message in new/).
func (m Message) Flags() Flags {
	n, err := ParseName(m.Name)
	if err != nil {
		return ""
	}
	return n.Flags()
}

// Path returns the message's path relative to the Maildir root, such as
// "cur/1700000000.M1P2Q3R0123456789abcdef.mx1:2,S".
func (m Message) Path() string { return m.Subdir + "/" + m.Name }

// validate refuses messages whose name could address anything but a file
// directly in new/ or cur/.
func (m Message) validate() error {
	if m.Subdir != "new" && m.Subdir != "cur" {
		return fmt.Errorf("maildir: bad subdirectory %q for %q", m.Subdir, m.Name)
	}
	_, err := ParseName(m.Name)
	return err
}

// List returns the messages in new/ and then cur/, skipping names that
// start with '.' and anything that is not a regular file, sorted by
// modification time (then by subdirectory and name). It reads each
// directory once and stats each file relative to the directory's open
// handle; Size is the file's size on disk and ModTime its modification
// time. Files that vanish between reading the directory and stat are
// skipped. It fails when new/ or cur/ is a symbolic link.
func (d Dir) List() ([]Message, error) {
	top, err := openDir(string(d))
	if err != nil {
		return nil, fmt.Errorf("maildir: list: %w", err)
	}
	defer top.Close()
	var msgs []Message
	for _, sub := range subdirs[1:] {
		if msgs, err = listSubdir(msgs, top, sub); err != nil {
			return nil, fmt.Errorf("maildir: list: %w", err)
		}
	}
	slices.SortFunc(msgs, func(a, b Message) int {
		if c := a.ModTime.Compare(b.ModTime); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Subdir, a.Subdir); c != 0 { // new before cur
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return msgs, nil
}

// listSubdir appends the regular files of the directory sub (new or cur)
// in top, with their sizes and modification times.
func listSubdir(msgs []Message, top *os.File, sub string) ([]Message, error) {
	f, err := openSub(top, sub)
	if err != nil {
		return msgs, err
	}
	defer f.Close()
	ents, err := entries(f, fs.FileMode.IsRegular)
	if err != nil {
		return msgs, err
	}
	var st unix.Stat_t
	for _, e := range ents {
		name := e.Name()
		err := fstatat(f, name, &st)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return msgs, &fs.PathError{Op: "fstatat", Path: sub + "/" + name, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue // replaced since the directory was read
		}
		msgs = append(msgs, Message{Name: name, Subdir: sub, Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())})
	}
	return msgs, nil
}

// Scan is a cheaper [Dir.List]: it reads new/ and then cur/ once each and
// stats only the files whose unique name carries no Maildir++ ",S=" size
// tag. Size comes from the tag when there is one, from stat otherwise;
// ModTime is zero. Messages are sorted by subdirectory (new first) and
// name. Scan suits quota counting and listings that do not need delivery
// times.
func (d Dir) Scan() ([]Message, error) {
	top, err := openDir(string(d))
	if err != nil {
		return nil, fmt.Errorf("maildir: scan: %w", err)
	}
	defer top.Close()
	var msgs []Message
	for _, sub := range subdirs[1:] {
		msgs, err = scanSubdir(msgs, top, sub, nil)
		if err != nil {
			return nil, fmt.Errorf("maildir: scan: %w", err)
		}
	}
	return msgs, nil
}

// scanSubdir appends the messages of the directory sub (new or cur) in
// top, skipping those for which skip returns true.
func scanSubdir(msgs []Message, top *os.File, sub string, skip func(name string) bool) ([]Message, error) {
	f, err := openSub(top, sub)
	if err != nil {
		return msgs, err
	}
	defer f.Close()
	ents, err := entries(f, fs.FileMode.IsRegular)
	if err != nil {
		return msgs, err
	}
	start := len(msgs)
	var st unix.Stat_t
	for _, e := range ents {
		name := e.Name()
		if skip != nil && skip(name) {
			continue
		}
		size, ok := sizeTag(Unique(name))
		if !ok {
			err := fstatat(f, name, &st) // only for untagged names
			if err == unix.ENOENT {
				continue
			}
			if err != nil {
				return msgs, &fs.PathError{Op: "fstatat", Path: name, Err: err}
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			size = st.Size
		}
		msgs = append(msgs, Message{Name: name, Subdir: sub, Size: size})
	}
	slices.SortFunc(msgs[start:], func(a, b Message) int { return cmp.Compare(a.Name, b.Name) })
	return msgs, nil
}

// OpenMessage opens a message for reading. It refuses, at once, anything
// but a regular file (a symbolic link, a FIFO, a device) and a message
// whose new/ or cur/ is a symbolic link.
func (d Dir) OpenMessage(m Message) (*os.File, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	sub, err := d.openSubdir(m.Subdir)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	defer sub.Close()
	f, err := openMessage(sub, m.Name)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	return f, nil
}

// openSubdir opens the directory sub of the Maildir (see openSub).
func (d Dir) openSubdir(sub string) (*os.File, error) {
	top, err := openDir(string(d))
	if err != nil {
		return nil, err
	}
	defer top.Close()
	return openSub(top, sub)
}

// Move moves a message from new/ to cur/, giving it the info "2," and no
// flags (what qmail-pop3d does at QUIT) or, when m already has an info,
// keeping it. A message already in cur/ is returned unchanged. Move returns
// the message as it now is.
func (d Dir) Move(m Message) (Message, error) {
	if err := m.validate(); err != nil {
		return m, err
	}
	if m.Subdir == "cur" {
		return m, nil
	}
	n, _ := ParseName(m.Name)
	if n.Info == "" {
		n.Info = "2,"
	}
	return d.rename(m, n.String())
}

// SetFlags gives a message the flags f (sorted and de-duplicated), moving
// it to cur/ when it is in new/. Unknown flag characters in f and a ",extra"
// part after the old flags are kept; to add or remove one flag, pass
// m.Flags().Add(maildir.Seen) or m.Flags().Remove(maildir.Flagged). It
// returns the message as it now is; when nothing changes it renames
// nothing.
func (d Dir) SetFlags(m Message, f Flags) (Message, error) {
	if err := m.validate(); err != nil {
		return m, err
	}
	n, _ := ParseName(m.Name)
	newName := n.WithFlags(f).String()
	if m.Subdir == "cur" && newName == m.Name {
		return m, nil
	}
	return d.rename(m, newName)
}

// rename renames m to cur/newName. Unique names make a collision
// impossible unless someone reuses one, so like every Maildir reader it
// uses rename(2) (atomic: the message is never seen twice or lost), as
// renameat(2) on the handles of new/ and cur/. A symbolic link named like
// a message is renamed itself, never followed.
func (d Dir) rename(m Message, newName string) (Message, error) {
	top, err := openDir(string(d))
	if err != nil {
		return m, fmt.Errorf("maildir: %w", err)
	}
	defer top.Close()
	cur, err := openSub(top, "cur")
	if err != nil {
		return m, fmt.Errorf("maildir: %w", err)
	}
	defer cur.Close()
	from := cur
	if m.Subdir != "cur" {
		if from, err = openSub(top, m.Subdir); err != nil {
			return m, fmt.Errorf("maildir: %w", err)
		}
		defer from.Close()
	}
	for {
		err = unix.Renameat(int(from.Fd()), m.Name, int(cur.Fd()), newName)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return m, fmt.Errorf("maildir: %w", &os.LinkError{Op: "rename", Old: m.Path(), New: "cur/" + newName, Err: err})
	}
	m.Subdir, m.Name = "cur", newName
	return m, nil
}

// Remove deletes a message with unlinkat(2) on the handle of new/ or cur/
// (a symbolic link named like a message is removed itself; a directory is
// not removed). When the Maildir has a Maildir++ maildirsize file, Remove
// appends the negative delta for it.
func (d Dir) Remove(m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	sub, err := d.openSubdir(m.Subdir)
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer sub.Close()
	size, tagged := sizeTag(m.Unique())
	if !tagged {
		size = -1
		var st unix.Stat_t
		if fstatat(sub, m.Name, &st) == nil {
			size = st.Size
		}
	}
	if err := unlinkat(sub, m.Name); err != nil {
		return fmt.Errorf("maildir: %w", &fs.PathError{Op: "unlink", Path: m.Path(), Err: err})
	}
	if size >= 0 {
		// Best effort: the quota code recalculates a file that drifts.
		appendQuotaDelta(string(d), -size, -1)
	}
	return nil
}

// CleanAge is how long a file in tmp/ must have gone unaccessed before
// [Dir.Clean] removes it: 36 hours, as qmail-pop3d does. Writers abandon
// a delivery after 24 hours.
const CleanAge = 36 * time.Hour

// Clean removes the files in tmp/ whose access time is more than
// [CleanAge] before now (a file exactly CleanAge old is kept, as in
// qmail-pop3d), skipping names that start with '.' and directories. It
// returns the number of files removed. It fails, removing nothing, when
// tmp/ is a symbolic link. The decision is a pure function of now and the
// files' access times.
func (d Dir) Clean(now time.Time) (int, error) {
	tmp, err := d.openSubdir("tmp")
	if err != nil {
		return 0, fmt.Errorf("maildir: clean: %w", err)
	}
	defer tmp.Close()
	ents, err := entries(tmp, func(m fs.FileMode) bool { return !m.IsDir() })
	if err != nil {
		return 0, fmt.Errorf("maildir: clean: %w", err)
	}
	removed := 0
	var errs []error
	var st unix.Stat_t
	for _, e := range ents {
		name := e.Name()
		if err := fstatat(tmp, name, &st); err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			continue // vanished
		}
		// qmail-pop3d: unlink when now > atime + 129600, in whole seconds.
		if now.Unix() <= st.Atim.Sec+int64(CleanAge/time.Second) {
			continue
		}
		if err := unlinkat(tmp, name); err != nil && err != unix.ENOENT {
			errs = append(errs, &fs.PathError{Op: "unlink", Path: "tmp/" + name, Err: err})
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("maildir: clean: %w", err)
	}
	return removed, nil
}
