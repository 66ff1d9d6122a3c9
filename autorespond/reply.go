package autorespond

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var errNoFrom = errors.New("autorespond: no From address (Responder.From and Envelope.Recipient are empty)")

// maxSubject bounds the reply's subject text (before encoding).
const maxSubject = 900

// maxReferences bounds the message identifiers in the References field.
const maxReferences = 10

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// compatReply builds autorespond 2.0.5's reply: Date and Message-ID
// lines, "Delivered-To: Autoresponder", To, From, "Subject: Re:" and the
// original Subject's raw value, the MESSAGE file, the quoted original
// text when body is not nil, and two empty lines.
func (r *Responder) compatReply(h Header, env Envelope, body io.Reader, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	u := now.UTC()
	fmt.Fprintf(&b, "Date: %d %s %d %02d:%02d:%02d -0000\nMessage-ID: <%d.%d.blah>\n",
		u.Day(), months[u.Month()-1], u.Year(), u.Hour(), u.Minute(), u.Second(), now.Unix(), r.pid())
	subject, ok := h.Get("Subject")
	if !ok {
		subject = "(null)" // printf("%s", NULL) in glibc
	}
	msg := r.Message
	if i := bytes.IndexByte(msg, 0); i >= 0 {
		msg = msg[:i]
	}
	var f bytes.Buffer
	fmt.Fprintf(&f, "Delivered-To: Autoresponder\nTo: %s\nFrom: %s\nSubject: Re:%s\n%s\n", env.Sender, r.From, subject, msg)
	if body != nil {
		f.WriteString("-------- Original Message --------\n\n")
		if err := compatQuote(&f, h, bufio.NewReader(body)); err != nil {
			return nil, fmt.Errorf("autorespond: read the message: %w", err)
		}
	}
	f.WriteString("\n\n")
	// The file was copied to qmail-queue in fgets chunks of 255 bytes
	// printed with %s: each chunk ends at its first NUL.
	for rest := f.Bytes(); len(rest) > 0; {
		chunk := rest[:min(len(rest), 255)]
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			chunk = chunk[:i+1]
		}
		rest = rest[len(chunk):]
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			chunk = chunk[:i]
		}
		b.Write(chunk)
	}
	return b.Bytes(), nil
}

// compatQuote writes the original text as autorespond 2.0.5 quoted it:
// every fgets chunk (a line, or 255 bytes of a longer one) after "> ";
// when the first Content-Type field names a boundary, only the first part
// whose own Content-Type contains "text/plain", without its header, up to
// the next line containing the boundary.
func compatQuote(w *bytes.Buffer, h Header, br *bufio.Reader) error {
	boundary := compatBoundary(h)
	found := false
	for {
		chunk, err := readLine(br, 255)
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			chunk = chunk[:i] // fputs stops there
		}
		if len(chunk) > 0 || err == nil {
			switch {
			case boundary == "":
				w.WriteString("> ")
				w.Write(chunk)
			case found && strings.Contains(string(chunk), boundary):
				return nil
			case found:
				w.WriteString("> ")
				w.Write(chunk)
			case strings.Contains(string(chunk), boundary):
				part, herr := ReadHeader(br, maxQuoteBytes, true)
				if herr != nil && !errors.Is(herr, ErrHeaderTooLarge) {
					return herr
				}
				v, ok := part.Get("Content-Type")
				found = ok && containsFold(v, "text/plain")
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// compatBoundary is autorespond's boundary: the first Content-Type field's
// raw value from "boundary=" (any case), less those 9 bytes and the
// opening quote, and less its last two bytes (the closing quote and the
// line end). "" when there is none or it would be empty.
func compatBoundary(h Header) string {
	v, ok := h.Get("Content-Type")
	if !ok {
		return ""
	}
	i := strings.Index(strings.ToLower(v), "boundary=")
	if i < 0 {
		return ""
	}
	rest := v[i:]
	if len(rest)-2 <= 10 {
		return ""
	}
	return rest[10 : len(rest)-2]
}

// modernReply builds an RFC 3834 reply.
func (r *Responder) modernReply(h Header, env Envelope, now time.Time) ([]byte, error) {
	from := r.From
	if from == "" {
		from = env.Recipient
	}
	from = clean(from)
	if from == "" {
		return nil, errNoFrom
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\n", from)
	fmt.Fprintf(&b, "To: <%s>\n", env.Sender)
	fmt.Fprintf(&b, "Subject: %s\n", encodeSubject(r.subject(h)))
	fmt.Fprintf(&b, "Date: %s\n", now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	fmt.Fprintf(&b, "Message-ID: %s\n", r.messageID(from, now))
	// RFC 3834 section 3.1.5 and RFC 5322 section 3.6.4.
	if ids := msgIDs(first(h, "Message-ID")); len(ids) > 0 {
		id := ids[0]
		refs := msgIDs(first(h, "References"))
		if len(refs) == 0 {
			if irt := msgIDs(first(h, "In-Reply-To")); len(irt) == 1 {
				refs = irt
			}
		}
		refs = append(refs, id)
		if len(refs) > maxReferences {
			// Keep the first (the thread's start) and the latest ones.
			refs = append(refs[:1], refs[len(refs)-maxReferences+1:]...)
		}
		fmt.Fprintf(&b, "In-Reply-To: %s\n", id)
		fmt.Fprintf(&b, "References: %s\n", strings.Join(refs, "\n "))
	}
	b.WriteString("Auto-Submitted: auto-replied\n")
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n")
	body := strings.ReplaceAll(strings.ToValidUTF8(r.Body, "\uFFFD"), "\r\n", "\n")
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	if plain(body) {
		b.WriteString("Content-Transfer-Encoding: 7bit\n\n")
		b.WriteString(body)
		return b.Bytes(), nil
	}
	b.WriteString("Content-Transfer-Encoding: quoted-printable\n\n")
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	w.Write([]byte(body))
	w.Close()
	b.Write(bytes.ReplaceAll(qp.Bytes(), []byte("\r\n"), []byte("\n")))
	return b.Bytes(), nil
}

// subject is the reply's subject text: Subject, else "Re: " and the
// original's (decoded from RFC 2047 words where it can be).
func (r *Responder) subject(h Header) string {
	if s := clean(r.Subject); s != "" {
		return truncate(s, maxSubject)
	}
	orig := first(h, "Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(orig); err == nil {
		orig = d
	}
	orig = clean(orig)
	switch {
	case orig == "":
		return "Automatic reply"
	case hasPrefixFold(orig, "re:"):
		return truncate(orig, maxSubject)
	}
	return truncate("Re: "+orig, maxSubject)
}

// encodeSubject returns s as it can be written in a header: as is when
// it is printable ASCII, else as RFC 2047 encoded words, one per line.
func encodeSubject(s string) string {
	if plainLine(s) {
		return s
	}
	return strings.ReplaceAll(mime.QEncoding.Encode("utf-8", s), "?= =?", "?=\n =?")
}

// messageID makes a new Message-ID on the From address's domain (or
// Hostname).
func (r *Responder) messageID(from string, now time.Time) string {
	host := r.Hostname
	if host == "" {
		if i := strings.LastIndexByte(from, '@'); i >= 0 {
			host = from[i+1:]
		}
	}
	host = strings.Map(func(c rune) rune {
		if c > 0x7e || c <= ' ' || strings.ContainsRune("<>()@\\\",;:", c) {
			return -1
		}
		return c
	}, host)
	if host == "" {
		host = "localhost"
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	return "<" + strconv.FormatInt(now.UnixNano(), 36) + "." + strconv.Itoa(r.pid()) + "." +
		hex.EncodeToString(rnd[:]) + ".autorespond@" + host + ">"
}

// msgIDs returns the "<...>" message identifiers in a field value, those
// without white space or control characters and at most 250 bytes long.
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ids
		}
		id := v[i : i+j+1]
		v = v[i+j+1:]
		if len(id) > 2 && len(id) <= 250 && !strings.ContainsFunc(id[1:len(id)-1], func(c rune) bool {
			return c <= ' ' || c == 0x7f || c == '<'
		}) {
			ids = append(ids, id)
		}
	}
}

func first(h Header, name string) string {
	v, _ := h.Get(name)
	return v
}

// clean makes s one line of valid UTF-8: control characters become
// spaces, and spaces at both ends are removed.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return ' '
		}
		return c
	}, s)
	return strings.TrimSpace(s)
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// plainLine reports whether s is printable ASCII.
func plainLine(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// plain reports whether body can go as 7bit: printable ASCII (and tabs)
// in lines of at most 76 bytes without trailing spaces (which transports
// may remove, and quoted-printable keeps).
func plain(body string) bool {
	for line := range strings.Lines(body) {
		line = strings.TrimSuffix(line, "\n")
		if len(line) > 76 || strings.HasSuffix(line, " ") {
			return false
		}
		for i := 0; i < len(line); i++ {
			if (line[i] < ' ' && line[i] != '\t') || line[i] > 0x7e {
				return false
			}
		}
	}
	return true
}
