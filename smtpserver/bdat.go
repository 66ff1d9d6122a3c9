package smtpserver

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// bdatTx is a CHUNKING transaction (RFC 3030) in progress: the Enqueuer
// runs in its own goroutine, owned by the session, reading the chunks
// through a pipe as the session receives them.
type bdatTx struct {
	pw     *io.PipeWriter
	pr     *io.PipeReader
	dr     *dataReader
	in     *dataIn
	tx     txLog // for the transaction's log line
	rcpts  []string
	order  []int
	result chan bdatResult
	res    *bdatResult
}

type bdatResult struct {
	id  string
	err error
}

var errBDATAborted = errors.New("smtpserver: BDAT transaction aborted")

// abortBDAT ends a BDAT transaction that will not complete, and waits for
// its Enqueuer (which sees a read error, so queues nothing).
func (s *session) abortBDAT() {
	if s.bdat == nil {
		return
	}
	s.bdat.pw.CloseWithError(errBDATAborted)
	s.bdat.wait()
	s.bdat = nil
	s.endRate()
}

func (b *bdatTx) wait() bdatResult {
	if b.res == nil {
		r := <-b.result
		b.res = &r
	}
	return *b.res
}

func parseBdat(arg string) (n int64, last, ok bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, false
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 || f[0][0] == '+' {
		return 0, false, false
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	return n, last, true
}

// cmdBdat handles "BDAT n [LAST]". The n octets always follow, so they are
// read (or skipped) whatever the reply.
func (s *session) cmdBdat(arg string) error {
	n, last, ok := parseBdat(arg)
	if !ok {
		// Without a size the chunk cannot be skipped: the session is lost.
		s.reject(ReasonSyntax, "BDAT", replyBdatSyntax)
		s.replyFlush(replyBdatSyntax)
		return ErrProtocol
	}
	var refuse *Reply
	switch {
	case !s.mail:
		refuse = &replyNoSender
	case len(s.rcpts) == 0:
		refuse = &replyRcptFirst
	case s.bdatFail:
		refuse = &replyBdatFailed
	}
	if refuse != nil {
		if err := s.skip(n); err != nil {
			return err
		}
		s.reply(*refuse)
		s.reject(ReasonSequence, "BDAT", *refuse)
		return nil
	}
	if s.bdat == nil {
		s.startBdat()
	}
	b := s.bdat
	stopped, err := s.copyChunk(b, n)
	if err != nil {
		return err
	}
	if !last {
		if stopped {
			// The Enqueuer stopped reading: report why now; the client
			// must RSET before trying again (RFC 3030 section 4.1).
			s.finishBdat(b)
			s.bdatFail = true
			return nil
		}
		s.reply(Reply{250, "2.0.0", strconv.FormatInt(n, 10) + " octets received"})
		return nil
	}
	b.pw.Close()
	s.finishBdat(b)
	s.resetTx()
	return nil
}

func (s *session) startBdat() {
	pr, pw := io.Pipe()
	dr := newDataReader(bufio.NewReaderSize(pr, 4096), s.databytes, !s.compat, true)
	b := &bdatTx{
		pw: pw, pr: pr, dr: dr, rcpts: s.rcpts, order: s.order,
		in:     &dataIn{s: s, dr: dr, rec: s.receivedLine()},
		tx:     s.takeTx(),
		result: make(chan bdatResult, 1),
	}
	from, rcpts, mailDSN, rcptDSN := s.from, s.rcpts, s.params.dsn(), s.rcptDSN
	go func() {
		id, err := s.enqueue(from, rcpts, mailDSN, rcptDSN, b.in)
		pr.CloseWithError(errBDATAborted)
		b.result <- bdatResult{id, err}
	}()
	s.bdat = b
	s.beginRate()
}

// finishBdat waits for the Enqueuer and writes the final reply(ies).
func (s *session) finishBdat(b *bdatTx) {
	res := b.wait()
	s.bdat = nil
	s.endRate()
	dr := b.dr
	if dr.fatal == errBareLF {
		s.reply(replyBareLF)
		s.reject(ReasonProtocol, "BDAT", replyBareLF)
		s.logTx(b.tx, dr.n, "", replyBareLF, nil)
		return
	}
	s.finalReplies(b.tx, "BDAT", b.rcpts, b.order, dr, b.in.sawEOF, res.id, res.err)
}

// copyChunk moves n octets from the client into the transaction's pipe, or
// discards them once the Enqueuer has stopped reading (stopped).
func (s *session) copyChunk(b *bdatTx, n int64) (stopped bool, err error) {
	src := &deadlineReader{s: s, r: io.LimitReader(s.br, n)}
	buf := make([]byte, 32*1024)
	for {
		k, rerr := src.Read(buf)
		if k > 0 && !stopped {
			if _, werr := b.pw.Write(buf[:k]); werr != nil {
				stopped = true
			}
		}
		if rerr == io.EOF {
			if src.n < n {
				return stopped, ErrClientGone
			}
			return stopped, nil
		}
		if rerr != nil {
			return stopped, s.readErr(rerr)
		}
	}
}

// skip discards n octets of a refused chunk, as slowly as MinDataRate
// allows.
func (s *session) skip(n int64) error {
	if !s.rating {
		s.beginRate()
		defer s.endRate()
	}
	src := &deadlineReader{s: s, r: io.LimitReader(s.br, n)}
	k, err := io.Copy(io.Discard, src)
	if err != nil {
		return s.readErr(err)
	}
	if k < n {
		return ErrClientGone
	}
	return nil
}

// deadlineReader arms the read deadline before each read that would block.
type deadlineReader struct {
	s *session
	r io.Reader
	n int64
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.s.br.Buffered() == 0 {
		d.s.armRead()
	}
	k, err := d.r.Read(p)
	d.n += int64(k)
	return k, err
}
