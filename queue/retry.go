package queue

import (
	"math"
	"strings"
	"time"
)

// DefaultLifetime is qmail's default control/queuelifetime: 7 days.
const DefaultLifetime = 604800 * time.Second

// NextRetry is qmail-send's retry schedule (nextretry): the time of the
// next attempt for a message born at birth, computed at the start of a pass
// at now. With n = floor(sqrt(now-birth)) (0 when birth is after now), plus
// 10 for the local channel or 20 for the remote one, the next attempt is at
// birth + n² seconds: locally 100, 400, 900, 1600 ... seconds after birth,
// remotely 400, 1600, 3600, 6400 ... Times are whole seconds, as in qmail.
func NextRetry(birth, now time.Time, remote bool) time.Time {
	b, t := birth.Unix(), now.Unix()
	var n int64
	if b <= t {
		n = isqrt(t - b)
	}
	if remote {
		n += 20
	} else {
		n += 10
	}
	return time.Unix(b+n*n, 0)
}

func isqrt(x int64) int64 {
	n := int64(math.Sqrt(float64(x)))
	for n*n > x {
		n--
	}
	for (n+1)*(n+1) <= x {
		n++
	}
	return n
}

// Dying reports whether a pass starting at now is the message's last: it
// has been queued longer than lifetime (strictly). Temporary failures in
// that pass become permanent.
func Dying(birth, now time.Time, lifetime time.Duration) bool {
	return now.Unix() > birth.Unix()+int64(lifetime/time.Second)
}

// tooLong is appended to a temporary failure report of a dying message
// (qmail-send's text).
const tooLong = "I'm not going to try again; this message has been in the queue too long.\n"

// verpSender is the envelope sender of one delivery (qmail-send's
// senderadd): a sender ending in "-@[]" with an "@" before it becomes
// sender-local + recipient-local "=" recipient-domain "@" sender-domain; any
// other sender is unchanged.
func verpSender(sender, rcpt string) string {
	if !strings.HasSuffix(sender, "-@[]") {
		return sender
	}
	j := strings.LastIndexByte(sender[:len(sender)-4], '@')
	if j < 0 { // qmail: j + 5 <= len, which holds whenever the @ is found
		return sender
	}
	k := strings.LastIndexByte(rcpt, '@')
	if k < 0 {
		return sender
	}
	return sender[:j] + rcpt[:k] + "=" + rcpt[k+1:] + "@" + sender[j+1:len(sender)-4]
}
