package maildir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// Maildir++ quota, as Courier's maildirquota and Dovecot's "maildir" quota
// backend keep it.

// Quota is a Maildir++ quota definition: limits on the total size in bytes
// and on the number of messages. A zero field means no limit of that kind.
type Quota struct {
	Bytes int64 // the "<n>S" item
	Count int64 // the "<n>C" item
}

// Usage is what a Maildir holds, as counted for quota purposes.
type Usage struct {
	Bytes int64
	Count int64
}

// ParseQuota parses a quota definition, the first line of maildirsize:
// comma-separated items "<n>S" (bytes) and "<n>C" (messages), such as
// "10000000S,1000C". The empty string is no quota.
func ParseQuota(s string) (Quota, error) {
	var q Quota
	if s == "" {
		return q, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if len(item) < 2 {
			return Quota{}, fmt.Errorf("maildir: bad quota %q", s)
		}
		n, err := strconv.ParseInt(item[:len(item)-1], 10, 64)
		if err != nil || n < 0 || item[0] == '+' || item[0] == '-' {
			return Quota{}, fmt.Errorf("maildir: bad quota %q", s)
		}
		switch item[len(item)-1] {
		case 'S':
			q.Bytes = n
		case 'C':
			q.Count = n
		default:
			return Quota{}, fmt.Errorf("maildir: bad quota %q", s)
		}
	}
	return q, nil
}

// String returns the quota definition as maildirsize's first line holds it
// ("1000S,10C"); a zero Quota gives "".
func (q Quota) String() string {
	var items []string
	if q.Bytes > 0 {
		items = append(items, strconv.FormatInt(q.Bytes, 10)+"S")
	}
	if q.Count > 0 {
		items = append(items, strconv.FormatInt(q.Count, 10)+"C")
	}
	return strings.Join(items, ",")
}

// exceeded reports whether one more message of size bytes would take u
// beyond q.
func (q Quota) exceeded(u Usage, size int64) bool {
	return q.Bytes > 0 && u.Bytes+size > q.Bytes || q.Count > 0 && u.Count+1 > q.Count
}

// ErrQuota is the condition of a delivery refused because the Maildir is
// over its quota. Deliveries return a *[QuotaError], for which
// errors.Is(err, ErrQuota) is true.
var ErrQuota = errors.New("maildir: mailbox is full")

// QuotaError is the error of a delivery refused by the Maildir++ quota.
// It is temporary (enhanced status 4.2.2, mailbox full) unless the
// deliverer was told to make it permanent (5.2.2).
type QuotaError struct {
	Quota Quota // the limits
	Usage Usage // the usage before the refused message
	Size  int64 // size of the refused message
	// Perm makes the refusal permanent (5.2.2, a bounce) instead of
	// temporary (4.2.2, a retry).
	Perm bool
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("maildir: mailbox is full: %d bytes in %d messages, quota %s, message of %d bytes refused (#%s)",
		e.Usage.Bytes, e.Usage.Count, e.Quota, e.Size, e.Enhanced())
}

// Is makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// Permanent reports whether the refusal is permanent.
func (e *QuotaError) Permanent() bool { return e.Perm }

// Enhanced returns the RFC 3463 enhanced status code: "4.2.2", or "5.2.2"
// when permanent.
func (e *QuotaError) Enhanced() string {
	if e.Perm {
		return "5.2.2"
	}
	return "4.2.2"
}

// The Maildir++ recalculation rules, as Courier applies them.
const (
	quotaFile       = "maildirsize"
	quotaMaxFile    = 5120             // a maildirsize this long is recalculated
	quotaStaleAfter = 15 * time.Minute // an over-quota file this old is recalculated
)

// maildirsize is a parsed maildirsize file.
type maildirsize struct {
	quota   Quota
	usage   Usage
	deltas  int // lines after the quota line
	size    int64
	modTime time.Time
}

// parseMaildirsize parses the file's bytes. A malformed delta line is an
// error: the caller recalculates.
func parseMaildirsize(b []byte) (maildirsize, error) {
	var m maildirsize
	first, rest, _ := bytes.Cut(b, []byte("\n"))
	q, err := ParseQuota(strings.TrimSpace(string(first)))
	if err != nil {
		return m, err
	}
	m.quota = q
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return m, fmt.Errorf("maildir: bad maildirsize line %q", line)
		}
		nb, err1 := strconv.ParseInt(f[0], 10, 64)
		nc, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return m, fmt.Errorf("maildir: bad maildirsize line %q", line)
		}
		m.usage.Bytes += nb
		m.usage.Count += nc
		m.deltas++
	}
	return m, nil
}

// readMaildirsize reads maildirsize through root. Only the first
// quotaMaxFile bytes are read: a longer file is recalculated anyway and
// only its first line matters.
func readMaildirsize(root *os.Root) (maildirsize, error) {
	f, err := openRegular(root, quotaFile, os.O_RDONLY)
	if err != nil {
		return maildirsize{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return maildirsize{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, quotaMaxFile))
	if err != nil {
		return maildirsize{}, err
	}
	m, err := parseMaildirsize(b)
	m.size, m.modTime = fi.Size(), fi.ModTime()
	return m, err
}

// ReadQuota reads the Maildir's maildirsize file (its parent's, for a
// Maildir++ folder): its quota and the usage its lines add up to. It fails
// with an error wrapping [fs.ErrNotExist] when there is no quota file.
func (d Dir) ReadQuota() (Quota, Usage, error) {
	root, err := openRoot(quotaRoot(string(d)))
	if err != nil {
		return Quota{}, Usage{}, fmt.Errorf("maildir: quota: %w", err)
	}
	defer root.Close()
	m, err := readMaildirsize(root)
	if err != nil {
		return Quota{}, Usage{}, fmt.Errorf("maildir: quota: %w", err)
	}
	return m.quota, m.usage, nil
}

// RecalculateQuota counts the messages of the Maildir and of its Maildir++
// folders and replaces maildirsize, atomically, with the quota line q and
// one line of totals. Like Courier it skips the .Trash folder and messages
// flagged T (trashed). For a Maildir++ folder it recalculates its parent.
func (d Dir) RecalculateQuota(q Quota) (Usage, error) {
	path := quotaRoot(string(d))
	root, err := openRoot(path)
	if err != nil {
		return Usage{}, fmt.Errorf("maildir: quota: %w", err)
	}
	defer root.Close()
	u, err := recalculate(root, path, q)
	if err != nil {
		return Usage{}, fmt.Errorf("maildir: quota: %w", err)
	}
	return u, nil
}

// countUsage sums the sizes and the number of messages in new/ and cur/ of
// the Maildir at path and of every folder in it except .Trash. Like the
// other readers it follows no symbolic link inside the Maildir: a new/ or
// cur/ that is one fails the count, a folder that is one is not counted.
func countUsage(path string) (Usage, error) {
	var u Usage
	top, err := openDir(path)
	if err != nil {
		return u, err
	}
	defer top.Close()
	ents, err := top.ReadDir(-1)
	if err != nil {
		return u, err
	}
	trashed := func(name string) bool {
		n, err := ParseName(name)
		return err == nil && n.Flags().Has(Trashed)
	}
	var msgs []Message
	count := func(dir *os.File, folder bool) error {
		for _, sub := range subdirs[1:] {
			msgs, err = scanSubdir(msgs[:0], dir, sub, trashed)
			if folder && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, errSymlink)) {
				continue // a folder without new/ or cur/ is not ours to judge
			}
			if err != nil {
				return err
			}
			for _, m := range msgs {
				u.Bytes += m.Size
				u.Count++
			}
		}
		return nil
	}
	if err := count(top, false); err != nil {
		return u, err
	}
	for _, e := range ents {
		n := e.Name()
		// The directory entry's type: a symbolic link is not a folder.
		if len(n) < 2 || n[0] != '.' || n == ".." || n == ".Trash" || !e.IsDir() {
			continue
		}
		f, err := openSub(top, n)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errSymlink) {
			continue // gone, or replaced by a link since the directory was read
		}
		if err != nil {
			return u, err
		}
		err = count(f, true)
		f.Close()
		if err != nil {
			return u, err
		}
	}
	return u, nil
}

// recalculate counts usage and atomically replaces maildirsize through a
// file in tmp/.
func recalculate(root *os.Root, path string, q Quota) (Usage, error) {
	u, err := countUsage(path)
	if err != nil {
		return u, err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return u, err
	}
	tmp := "tmp/" + strconv.FormatInt(time.Now().Unix(), 10) + "." + hex.EncodeToString(rnd[:]) + "." + quotaFile
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return u, err
	}
	content := fmt.Sprintf("%s\n%d %d\n", q, u.Bytes, u.Count)
	_, err = f.WriteString(content)
	if cerr := durable.SyncClose(f); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, quotaFile)
	}
	if err != nil {
		root.Remove(tmp)
		return u, err
	}
	return u, syncRootDir(root, ".")
}

// folderFile marks a Maildir++ folder; its quota is its parent's.
const folderFile = "maildirfolder"

// quotaRoot returns the path of the Maildir whose maildirsize counts the
// Maildir at path: its parent when path is a Maildir++ folder (it holds a
// maildirfolder file, as Courier checks), path itself otherwise.
func quotaRoot(path string) string {
	if _, err := os.Lstat(filepath.Join(path, folderFile)); err == nil {
		return filepath.Dir(filepath.Clean(path))
	}
	return path
}

// appendQuotaDelta appends "<bytes> <count>\n" to the maildirsize file of
// the Maildir at path (of its parent, for a folder), when there is one, in
// a single write on an O_APPEND descriptor, so that concurrent appends
// never interleave.
func appendQuotaDelta(path string, nbytes, count int64) error {
	root, err := openRoot(quotaRoot(path))
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := openRegular(root, quotaFile, os.O_WRONLY|os.O_APPEND)
	if err != nil {
		return err
	}
	return writeDelta(f, nbytes, count)
}

func writeDelta(f *os.File, nbytes, count int64) error {
	line := strconv.FormatInt(nbytes, 10) + " " + strconv.FormatInt(count, 10) + "\n"
	_, err := f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncRootDir fsyncs the directory name inside root.
func syncRootDir(root *os.Root, name string) error {
	d, err := root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	return durable.SyncClose(d)
}

// checkQuota decides whether a message of size bytes may be delivered into
// the Maildir open at root. It returns whether the delivery must append a
// delta line to maildirsize afterwards. configured is the quota set by the
// deliverer (zero: whatever maildirsize says).
func checkQuota(root *os.Root, path string, configured Quota, perm bool, now time.Time, size int64) (track bool, err error) {
	m, err := readMaildirsize(root)
	recalc := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if configured == (Quota{}) {
			return false, nil // no quota anywhere: nothing to do
		}
		recalc = true
	case err != nil:
		if configured == (Quota{}) && m.quota == (Quota{}) {
			// An unreadable quota line and no quota of our own: a
			// broken maildirsize must never stop mail.
			return false, nil
		}
		recalc = true
	}
	q := m.quota
	if configured != (Quota{}) && configured != q {
		q, recalc = configured, true
	}
	if m.size >= quotaMaxFile || m.usage.Bytes < 0 || m.usage.Count < 0 {
		recalc = true
	}
	u := m.usage
	if recalc {
		if u, err = recalculate(root, path, q); err != nil {
			return false, err
		}
	}
	// Courier's docheckquota: an over-quota verdict is trusted only from
	// a file of one delta line (as a recalculation writes it) younger
	// than 15 minutes; otherwise count again before refusing.
	if q.exceeded(u, size) && !recalc && (m.deltas != 1 || !now.Before(m.modTime.Add(quotaStaleAfter))) {
		if u, err = recalculate(root, path, q); err != nil {
			return false, err
		}
	}
	if q.exceeded(u, size) {
		return false, &QuotaError{Quota: q, Usage: u, Size: size, Perm: perm}
	}
	return true, nil
}
