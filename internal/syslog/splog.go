package syslog

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Sender takes one message at a severity; [*Logger] is one.
type Sender interface {
	Log(sev int, msg string) error
}

// ChunkSize is the most bytes of a line splogger puts in one message.
const ChunkSize = 799

// Splog copies the lines of r to s as qmail's splogger does
// (splogger(8)): every byte outside 32-126 becomes '?'; an empty line is
// not logged; a line goes out in chunks of at most [ChunkSize] bytes, the
// first as "STAMP TEXT", the next ones as "STAMP+TEXT" with the same stamp
// and severity. STAMP is now() as SECONDS.MICROSECONDS (six digits), taken
// when the first chunk goes out (at the line's LF, or once ChunkSize bytes
// have gathered). The severity is [Warning] for a first chunk starting
// "warning:", [Alert] for "alert:", else [Info]. Splog returns at the end
// of r, nil, or with r's error; an unterminated last line is dropped.
// Errors of s are ignored: syslog(3) drops what it cannot send.
func Splog(r io.Reader, s Sender, now func() time.Time) error {
	br := bufio.NewReader(r)
	buf := make([]byte, 0, ChunkSize)
	cont := false
	sev := Info
	var stamp string
	flush := func() {
		if len(buf) == 0 {
			return
		}
		if cont {
			s.Log(sev, stamp+"+"+string(buf))
		} else {
			t := now()
			stamp = strconv.FormatInt(t.Unix(), 10) + "." + pad6(t.Nanosecond()/1000)
			sev = Info
			if strings.HasPrefix(string(buf), "warning:") {
				sev = Warning
			}
			if strings.HasPrefix(string(buf), "alert:") {
				sev = Alert
			}
			s.Log(sev, stamp+" "+string(buf))
			cont = true
		}
		buf = buf[:0]
	}
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c == '\n' {
			flush()
			cont = false
			continue
		}
		if len(buf) == ChunkSize {
			flush()
		}
		if c < 32 || c > 126 {
			c = '?'
		}
		buf = append(buf, c)
	}
}

// pad6 formats n (0 to 999999) with six digits.
func pad6(n int) string {
	s := strconv.Itoa(n)
	return strings.Repeat("0", 6-len(s)) + s
}

// Facility reads splogger's facility argument as it does: the leading
// decimal digits (none: 0, wrapping as an unsigned long does) times 8, cut
// to a C int, for [Logger.Facility].
func Facility(arg string) int {
	var u uint64
	for i := 0; i < len(arg) && arg[i] >= '0' && arg[i] <= '9'; i++ {
		u = u*10 + uint64(arg[i]-'0')
	}
	return int(int32(uint32(u << 3)))
}
