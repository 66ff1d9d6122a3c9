package mta

import "time"

// CheckSpace returns nil when the queue's file system has room for a new
// message at now, and an error (a 452 smtpserver.Reply, or statfs's error)
// when it has less free space than control/queueminfree, by default one
// and a half times the message size limit: the check the SMTP servers
// make at MAIL, for other ways into the queue (examples/mta's queue
// socket).
func (s *System) CheckSpace(now time.Time) error { return s.space.check(now) }

// MaxMessageBytes is control/databytes as the SMTP servers last read it
// (read now if they have not yet; reread by Reload): the largest message,
// in bytes; 0 when the file does not exist (the default limit applies),
// negative when it says 0 (no limit).
func (s *System) MaxMessageBytes() (int64, error) {
	if err := s.loadSMTPPolicy(); err != nil {
		return 0, err
	}
	return s.smtpd.Load().MaxMessageBytes, nil
}
