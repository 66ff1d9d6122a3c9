package mta

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/smtpserver"
)

// defaultMinFree is the free space the queue's file system must keep when
// messages have no size limit: a new transaction is refused below it.
const defaultMinFree = 64 << 20

// defaultDataBytes is the message size limit smtpserver applies when
// control/databytes does not exist.
const defaultDataBytes = 35 << 20

// queueMinFree reads control/queueminfree: the bytes the queue's file
// system must keep free for a new transaction to start; set is false when
// the file does not exist.
func (s *System) queueMinFree() (n int64, set bool, err error) {
	if _, ok, err := s.Home.Line("queueminfree"); err != nil || !ok {
		return 0, false, err
	}
	n, err = s.Home.Int("queueminfree", 0)
	return n, true, err
}

// minFreeInodes is the fewest free inodes with which a transaction is
// started: a message takes a few files in the queue and one in a Maildir.
const minFreeInodes = 64

// replyNoSpace is the answer at MAIL while the queue's file system is
// nearly full (RFC 3463 4.3.1, the code Postfix and others give).
var replyNoSpace = smtpserver.Reply{Code: 452, Enhanced: "4.3.1", Text: "insufficient system storage, try again later"}

// spaceCheck refuses new transactions (452 at MAIL) while the file system
// of the queue has less free space than a message may need, so that a
// client learns it before sending a whole message that would only be
// refused at the end of DATA. The need is control/queueminfree (bytes)
// when it is set, else one and a half times the message size limit, as
// Postfix's smtpd does, else 64 MiB. statfs is asked at most every
// interval.
type spaceCheck struct {
	dir      string
	need     func() int64 // bytes that must stay free
	interval time.Duration
	statfs   func(path string, st *unix.Statfs_t) error

	mu      sync.Mutex
	checked time.Time
	err     error
}

// check returns nil when there is room for a new transaction at now, and
// replyNoSpace (or statfs's error, as a temporary failure) when not.
func (c *spaceCheck) check(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.checked.IsZero() && now.Sub(c.checked) < c.interval && now.After(c.checked) {
		return c.err
	}
	c.checked = now
	var st unix.Statfs_t
	statfs := c.statfs
	if statfs == nil {
		statfs = unix.Statfs
	}
	if err := statfs(c.dir, &st); err != nil {
		c.err = fmt.Errorf("mta: free space of %s: %w", c.dir, err)
		return c.err
	}
	free := st.Bavail * uint64(st.Bsize)
	need := c.need()
	switch {
	case need > 0 && free < uint64(need):
		c.err = smtpserver.WithReason(replyNoSpace, "space")
	case st.Files > 0 && st.Ffree < minFreeInodes:
		c.err = smtpserver.WithReason(replyNoSpace, "space")
	default:
		c.err = nil
	}
	return c.err
}

// minFree is the free space a new transaction needs: queueminfree when
// set (0 turns the check off), else 1.5 times databytes, else
// defaultMinFree.
func minFree(queueMinFree int64, set bool, databytes int64) int64 {
	switch {
	case set:
		return queueMinFree
	case databytes > 0:
		return databytes + databytes/2
	}
	return defaultMinFree
}
