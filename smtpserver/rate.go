package smtpserver

import (
	"time"
)

// dataRateGrace is how long the server waits for a message's data before
// it checks MinDataRate.
const dataRateGrace = 30 * time.Second

// connReader is what the session's bufio.Reader reads: the connection (under
// TLS after STARTTLS), counting the bytes it gives and, while the session
// checks the data rate, the time spent waiting for them.
type connReader struct {
	s      *session
	n      int64         // bytes read
	timing bool          // measure waited
	waited time.Duration // time spent in reads while timing
}

func (r *connReader) Read(p []byte) (int, error) {
	if !r.timing {
		k, err := r.s.conn.Read(p)
		r.n += int64(k)
		return k, err
	}
	t := time.Now()
	k, err := r.s.conn.Read(p)
	r.waited += time.Since(t)
	r.n += int64(k)
	return k, err
}

// armRead sets the read deadline before a read that may block: Timeout from
// now, or sooner when a client sending a message would by then have fallen
// below the minimum data rate (then rateCut is set, and readErr reports a
// timeout as ErrTooSlow).
func (s *session) armRead() {
	d := s.set.Timeout
	s.rateCut = false
	if s.rating {
		if left := s.rateLeft(); left < d {
			d, s.rateCut = max(left, 0), true
		}
	}
	s.conn.SetReadDeadline(time.Now().Add(d))
}

// rateLeft is how much longer the session may wait for the client before
// the bytes it sent since the phase began fall below minRate per second of
// waiting (never checked before dataRateGrace of waiting).
func (s *session) rateLeft() time.Duration {
	got := s.cr.n - s.rateStart
	need := dataRateGrace
	if secs := float64(got) / float64(s.minRate); secs > need.Seconds() {
		need = time.Duration(min(secs, 1e9) * float64(time.Second))
	}
	return need - s.cr.waited
}

// beginRate starts checking the data rate, if there is a minimum: the bytes
// already buffered count as sent during the phase.
func (s *session) beginRate() {
	if s.minRate <= 0 {
		return
	}
	s.rating = true
	s.rateStart = s.cr.n - int64(s.br.Buffered())
	s.cr.timing, s.cr.waited = true, 0
}

// endRate stops checking the data rate.
func (s *session) endRate() {
	s.rating, s.rateCut = false, false
	s.cr.timing = false
}
