package inject

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/internal/quote"
)

// Strategy says where the envelope recipients come from (qmail-inject's
// -A, -a, -h, -H).
type Strategy int

const (
	// Default (-A): the arguments; if there are none, the header.
	Default Strategy = iota
	// ArgsOnly (-a): the arguments only.
	ArgsOnly
	// HeaderOnly (-h): the header only; arguments are ignored.
	HeaderOnly
	// ArgsAndHeader (-H): the arguments, then the header.
	ArgsAndHeader
)

// Options are one run's command-line choices; [ParseArgs] makes them from
// qmail-inject's arguments.
type Options struct {
	Strategy Strategy
	// Sender is the envelope sender, already rewritten, when HasSender
	// (-f); it wins over Return-Path fields and the environment.
	Sender    string
	HasSender bool
	// Args are the recipient arguments, not yet rewritten.
	Args []string
	// Print is -n: print the message instead of queueing it.
	Print bool
}

// Message is a prepared message: its envelope, its rewritten header, and a
// reader for the whole message (header, then the body as it is read from
// the input). Read it once.
type Message struct {
	Sender     string
	Recipients []string
	// Header is the added fields then the kept ones. The line that ends
	// the header (a blank line) belongs to the body; a message that ended
	// inside its header has none.
	Header []byte

	r      io.Reader
	body   *bodyReader
	resent bool
}

// Read reads the message: Header, then the body.
func (m *Message) Read(p []byte) (int, error) {
	return m.r.Read(p)
}

// ReadErr is the error, if any, met reading the body from the input (as
// opposed to a short read by a consumer). A message with a ReadErr is
// incomplete and must not be queued.
func (m *Message) ReadErr() error {
	return m.body.err
}

// Resent reports whether the message is a resent one (it has a Resent-
// field), in which case recipients come from Resent-To, -Cc and -Bcc.
func (m *Message) Resent() bool { return m.resent }

// ReturnPath is the line qmail-inject -n prints first:
// "Return-Path: <sender>\n".
func (m *Message) ReturnPath() string {
	return "Return-Path: <" + quote.Addr(m.Sender) + ">\n"
}

// Print writes what qmail-inject -n prints: the Return-Path line and the
// message. Like qmail-inject it ignores write errors (and goes on reading
// the input); an input error is *Error "read error".
func (m *Message) Print(w io.Writer) error {
	ew := &errWriter{w: w}
	io.WriteString(ew, m.ReturnPath())
	io.Copy(ew, m)
	if err := m.ReadErr(); err != nil {
		return errRead(err)
	}
	return nil
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
	return len(p), nil
}

// QueueFunc hands a message to the queue with its envelope and returns
// the queue's id. The Run method of internal/qq's Program (which runs
// $QMAILQUEUE or QMAILHOME/bin/qmail-queue with qmail-queue's descriptor
// protocol) is one; so is the Forward method of dotqmail.QueueProgram, or
// the queue in-process. A refusal's text is its Text() string method if it
// has one, else its Error(): qmail's client text for the injector's result
// ("qq write error or disk full (#4.3.0)"); it is permanent when it has
// Permanent() returning true.
type QueueFunc func(ctx context.Context, sender string, recipients []string, r io.Reader) (id string, err error)

// Queue hands m to queue, as qmail-inject does without -n. Errors are
// *Error: "read error" when the input failed, else
// "qmail-inject: fatal: <injector text>", permanent as the injector says.
func (m *Message) Queue(ctx context.Context, queue QueueFunc) error {
	_, err := queue(ctx, m.Sender, m.Recipients, m)
	if rerr := m.ReadErr(); rerr != nil {
		return errRead(rerr)
	}
	if err == nil {
		return nil
	}
	text := err.Error()
	if t := (interface{ Text() string })(nil); errors.As(err, &t) {
		text = t.Text()
	}
	return fatal(text+"\n", qmailkit.IsPermanent(err), err)
}

// bodyReader streams the rest of the input after the header, adding a
// newline to a last line that lacks one.
type bodyReader struct {
	br   *bufio.Reader
	last byte // last byte returned
	any  bool // some byte was returned
	done bool
	err  error // input error (not EOF)
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.br.Read(p)
	if n > 0 {
		b.last, b.any = p[n-1], true
		return n, nil
	}
	if err == nil {
		return 0, nil
	}
	b.done = true
	if err != io.EOF {
		b.err = err
		return 0, err
	}
	if b.any && b.last != '\n' {
		b.last = '\n'
		p[0] = '\n'
		return 1, nil
	}
	return 0, io.EOF
}

// parseState collects what qmail-inject learns from the header fields.
type parseState struct {
	in        *Injector
	rw        *rewriter
	seen      [hNum]bool
	kept      bytes.Buffer
	sender    string
	hasSender bool
	hr        []string // To, Cc, Bcc, Apparently-To addresses
	hrr       []string // Resent-To, -Cc, -Bcc addresses
	tocc      []string // To and Cc addresses, for Mail-Followup-To
	eof       bool     // the input ended while reading the header
}

// collect appends the unquoted form of a reversed address.
func collect(list *[]string, addr []token) {
	n := append([]token(nil), addr...)
	reverse(n)
	*list = append(*list, unquote(n))
}

func (st *parseState) setReturn(addr []token) {
	if st.hasSender {
		return
	}
	n := append([]token(nil), addr...)
	reverse(n)
	st.sender, st.hasSender = unquote(n), true
	if st.in.VERPRecipient {
		st.sender += "-@[]"
	}
}

// rewriteField runs fn over the addresses of field h and prints it back;
// ok is false when h does not parse.
func (st *parseState) rewriteField(h []byte, fn func([]token) []token) ([]byte, bool) {
	toks, ok := tokenize(h)
	if !ok {
		return nil, false
	}
	out, ok := addrList(toks, fn)
	if !ok {
		return nil, false
	}
	return unparse(out, lineLen), true
}

// lineLen is qmail-inject's LINELEN: folded lines are at most 78 bytes.
const lineLen = 80

// field handles one header field, with its continuation lines
// (doheaderfield).
func (st *parseState) field(h []byte) error {
	ht := known(h)
	switch {
	case st.in.DeleteFrom && ht == hFrom,
		st.in.DeleteMessageID && ht == hMessageID,
		st.in.DeleteReturnPath && ht == hReturnPath:
		return nil
	}
	st.seen[ht] = true
	rw := st.rw.rewrite
	var fn func([]token) []token
	mayFail := false
	switch ht {
	case hTo, hCc:
		fn = func(a []token) []token {
			a = rw(a)
			collect(&st.hr, a)
			collect(&st.tocc, a)
			return a
		}
		mayFail = true
	case hBcc, hApparentlyTo:
		fn = func(a []token) []token { a = rw(a); collect(&st.hr, a); return a }
		mayFail = true
	case hResentTo, hResentCc, hResentBcc:
		fn = func(a []token) []token { a = rw(a); collect(&st.hrr, a); return a }
		mayFail = true
	case hReturnPath:
		fn = func(a []token) []token { a = rw(a); st.setReturn(a); return a }
	case hSender, hFrom, hReplyTo, hReturnReceiptTo, hErrorsTo, hResentSender, hResentFrom, hResentReplyTo:
		fn = rw
	}
	if fn != nil {
		out, ok := st.rewriteField(h, fn)
		switch {
		case ok:
			h = out
		case !mayFail:
			return errParseLine(h)
		}
		// A recipient field that does not parse is kept as it is
		// (notqmail); the addresses found before the error count.
	}
	switch ht {
	case hBcc, hResentBcc, hReturnPath, hContentLength:
		return nil
	}
	st.kept.Write(h)
	return nil
}

// defaultFrom is the default From field (defaultfrommake), printed then
// parsed and rewritten like an incoming one.
func (st *parseState) defaultFrom() ([]byte, error) {
	in := st.in
	toks := []token{{typ: tAtom, s: "From"}, {typ: tColon}}
	angle := in.HasName && !in.NameComment
	if angle {
		toks = append(toks, token{typ: tQuote, s: in.Name}, token{typ: tLeft})
	}
	user := token{typ: tAtom, s: in.User}
	if quote.Need(in.User) {
		user.typ = tQuote
	}
	toks = append(toks, user)
	if in.HasHost {
		toks = append(toks, token{typ: tAt}, token{typ: tAtom, s: in.Host})
	}
	if angle {
		toks = append(toks, token{typ: tRight})
	}
	if in.HasName && in.NameComment {
		toks = append(toks, token{typ: tComment, s: in.Name})
	}
	text := unparse(toks, lineLen)
	out, ok := st.rewriteField(text, st.rw.rewrite)
	if !ok {
		return nil, errParseLine(text)
	}
	return out, nil
}

// defaultReturnPath sets the default envelope sender (dodefaultreturnpath).
func (st *parseState) defaultReturnPath(now int64) error {
	in := st.in
	user := in.SenderUser
	if in.VERPMessage {
		user += "-" + strconv.FormatInt(now, 10) + "." + strconv.Itoa(in.pid())
	}
	if in.VERPRecipient {
		user += "-"
	}
	toks := []token{{typ: tAtom, s: "Return-Path"}, {typ: tColon}, {typ: tQuote, s: user}}
	if in.HasSenderHost {
		toks = append(toks, token{typ: tAt}, token{typ: tAtom, s: in.SenderHost})
	}
	text := unparse(toks, lineLen)
	if _, ok := st.rewriteField(text, func(a []token) []token {
		a = st.rw.rewrite(a)
		st.setReturn(a)
		return a
	}); !ok {
		return errParseLine(text)
	}
	return nil
}

// Prepare reads a message's header from r and prepares it as qmail-inject
// does: the recipient arguments are rewritten, the header fields parsed,
// rewritten, dropped or kept, the missing fields added, the envelope
// decided. The body is not read: the Message streams it
// from r. Errors are *Error with qmail-inject's texts.
func (in *Injector) Prepare(r io.Reader, opt Options) (*Message, error) {
	rw, err := in.rewriter()
	if err != nil {
		return nil, err
	}
	now := in.now()
	st := &parseState{in: in, rw: rw, sender: opt.Sender, hasSender: opt.HasSender}

	strategy := opt.Strategy
	if strategy == Default {
		strategy = HeaderOnly
		if len(opt.Args) > 0 {
			strategy = ArgsOnly
		}
	}
	var rcpts []string
	if strategy != HeaderOnly {
		for _, a := range opt.Args {
			s, ok := rw.bare(a)
			if !ok {
				return nil, fatal("unable to parse address: "+a+"\n", true, nil)
			}
			rcpts = append(rcpts, s)
		}
	}

	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	var prefix []byte // the start of the body found while reading the header
	if prefix, err = st.readHeader(br); err != nil {
		return nil, err
	}

	resent := st.seen[hResentSender] || st.seen[hResentFrom] || st.seen[hResentReplyTo] ||
		st.seen[hResentTo] || st.seen[hResentCc] || st.seen[hResentBcc] ||
		st.seen[hResentDate] || st.seen[hResentMessageID]
	if !st.hasSender {
		if err := st.defaultReturnPath(now.Unix()); err != nil {
			return nil, err
		}
	}

	var h bytes.Buffer
	pfx := ""
	if resent {
		pfx = "Resent-"
	}
	dateSeen, idSeen, fromSeen := st.seen[hDate], st.seen[hMessageID], st.seen[hFrom]
	toSeen := st.seen[hTo] || st.seen[hCc]
	if resent {
		dateSeen, idSeen, fromSeen = st.seen[hResentDate], st.seen[hResentMessageID], st.seen[hResentFrom]
		toSeen = st.seen[hResentTo] || st.seen[hResentCc]
	}
	if !dateSeen {
		h.WriteString(pfx + "Date: " + date822(now) + "\n")
	}
	if !idSeen {
		h.WriteString(pfx + "Message-ID: " + messageID(now, in.pid(), in.IDHost) + "\n")
	}
	if !fromSeen {
		from, err := st.defaultFrom()
		if err != nil {
			return nil, err
		}
		h.WriteString(pfx)
		h.Write(from)
	}
	if !toSeen {
		h.WriteString(pfx + "Cc: recipient list not shown: ;\n")
	}
	if !resent {
		st.mailFollowupTo(&h)
	}
	h.Write(st.kept.Bytes())

	if strategy != ArgsOnly {
		if resent {
			rcpts = append(rcpts, st.hrr...)
		} else {
			rcpts = append(rcpts, st.hr...)
		}
	}
	m := &Message{
		Sender:     st.sender,
		Recipients: rcpts,
		Header:     h.Bytes(),
		body:       &bodyReader{br: br},
		resent:     resent,
	}
	m.body.done = st.eof
	m.r = io.MultiReader(bytes.NewReader(m.Header), bytes.NewReader(prefix), m.body)
	return m, nil
}

// mailFollowupTo adds Mail-Followup-To when a To or Cc address is one of
// the MFT list (finishmft).
func (st *parseState) mailFollowupTo(h *bytes.Buffer) {
	if st.in.MFT == nil || st.seen[hMailFollowupTo] {
		return
	}
	match := false
	for _, a := range st.tocc {
		for _, l := range st.in.MFT {
			if asciiEqualFold(a, l) {
				match = true
			}
		}
	}
	if !match {
		return
	}
	h.WriteString("Mail-Followup-To: ")
	for i := len(st.tocc) - 1; i >= 0; i-- {
		h.WriteString(quote.Addr(st.tocc[i]))
		if i > 0 {
			h.WriteString(",\n  ")
		}
	}
	h.WriteString("\n")
}

// asciiEqualFold compares as constmap does: ASCII letters in either case.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
