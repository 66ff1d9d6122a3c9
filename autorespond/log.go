package autorespond

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// maxEntrySize bounds what is read of a log entry: an entry holds one
// address, and one longer than the sender cannot be equal to it.
const maxEntrySize = 1024

// record logs a message from sender at now in the log directory dir, as
// autorespond does (a file A<pid>.<unix time> holding the sender), removes
// the entries older than now-interval, and returns the number of entries
// of the sender within the interval, the new one included. full reports
// that dir holds more than maxEntries entries: the count is then not
// known.
//
// The directory is not trusted: its entries are opened without following
// symbolic links and without blocking, anything but a regular file is not
// read, and at most maxEntries entries are examined.
func record(dir, sender string, now time.Time, interval time.Duration, pid, maxEntries int) (count int, full bool, err error) {
	if dir == "" {
		return 0, false, fmt.Errorf("%w: none given", ErrLogDir)
	}
	dfd, err := durable.Openat(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrLogDir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	d := os.NewFile(uintptr(dfd), dir)
	defer d.Close()

	t := now.Unix()
	own, err := create(dfd, dir, fmt.Sprintf("A%d.%d", pid, t), sender)
	if err != nil {
		return 0, false, err
	}
	count = 1
	oldest := t - int64(interval/time.Second)
	seen := 0
	for {
		ents, rerr := d.ReadDir(256)
		for _, e := range ents {
			if seen++; seen > maxEntries {
				return count, true, nil
			}
			name := e.Name()
			if name == own || name[0] != 'A' {
				continue
			}
			_, ts, ok := strings.Cut(name, ".")
			if !ok {
				continue
			}
			if leadingNumber(ts) < oldest {
				unix.Unlinkat(dfd, name, 0) // as autorespond: errors ignored
				continue
			}
			if !e.Type().IsRegular() {
				continue
			}
			if b, err := readEntry(dfd, name, max(maxEntrySize, len(sender))); err == nil && strings.EqualFold(string(b), sender) {
				count++
			}
		}
		if rerr == io.EOF || len(ents) == 0 {
			return count, false, nil
		}
		if rerr != nil {
			return count, false, fmt.Errorf("%w: %w", ErrLogDir, rerr)
		}
	}
}

// create makes the log entry name in dfd (name.1, name.2, ... when it
// exists, as when one process answers several messages in a second) and
// writes sender into it. It returns the name used.
func create(dfd int, dir, name, sender string) (string, error) {
	const tries = 1000
	for i := 0; i < tries; i++ {
		n := name
		if i > 0 {
			n = name + "." + strconv.Itoa(i)
		}
		fd, err := durable.Openat(dfd, n, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrLogEntry, &os.PathError{Op: "create", Path: dir + "/" + n, Err: err})
		}
		f := os.NewFile(uintptr(fd), n)
		_, werr := io.WriteString(f, sender)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			unix.Unlinkat(dfd, n, 0)
			return "", fmt.Errorf("%w: %w", ErrLogEntry, werr)
		}
		return n, nil
	}
	return "", fmt.Errorf("%w: %s/%s and .1 to .%d exist", ErrLogEntry, dir, name, tries-1)
}

// readEntry reads at most max+1 bytes of the regular file name in dfd,
// without following a symbolic link or blocking on a FIFO.
func readEntry(dfd int, name string, max int) ([]byte, error) {
	fd, err := durable.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.New("not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, int64(max)+1))
}

// leadingNumber is strtoul(s, NULL, 10) as autorespond uses it: the
// leading decimal digits of s (0 when there are none), saturating.
func leadingNumber(s string) int64 {
	var n int64
	for i := 0; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		if n > (1<<62)/10 {
			return 1 << 62
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}
