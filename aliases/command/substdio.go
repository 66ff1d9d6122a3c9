package command

import "io"

// djb's programs write through a 256-byte output buffer (subfdoutsmall) and
// read through a 256-byte input buffer (subfdinsmall) whose refill first
// flushes the output. printforward and printmaillist die without flushing,
// so what a reader sees after "bad database format" is exactly what those
// buffers let out; smallOut and smallIn reproduce them byte for byte.

const smallSize = 256

// smallOut is subfdoutsmall. With bytewise, each Write is that many
// one-byte substdio_put calls (printforward's putch); otherwise each Write
// is one substdio_put (printmaillist's substdio_puts).
type smallOut struct {
	w        io.Writer
	buf      [smallSize]byte
	p        int
	bytewise bool
}

func (o *smallOut) flush() error {
	if o.p == 0 {
		return nil
	}
	_, err := o.w.Write(o.buf[:o.p])
	o.p = 0
	return err
}

// put is substdio_put: when b does not fit, the buffer is flushed, and
// more than a buffer's worth is written directly (in 8192-byte pieces).
func (o *smallOut) put(b []byte) error {
	if len(b) > smallSize-o.p {
		if err := o.flush(); err != nil {
			return err
		}
		for len(b) > smallSize {
			n := min(len(b), 8192)
			if _, err := o.w.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
	}
	o.p += copy(o.buf[o.p:], b)
	return nil
}

func (o *smallOut) Write(b []byte) (int, error) {
	if !o.bytewise {
		return len(b), o.put(b)
	}
	for i := range b {
		if err := o.put(b[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(b), nil
}

// smallIn is subfdinsmall: 256-byte reads, each after flushing out (a
// failed flush is a read error, as subfd_readsmall returns it).
type smallIn struct {
	r    io.Reader
	out  *smallOut
	buf  [smallSize]byte
	p, n int
}

func (in *smallIn) ReadByte() (byte, error) {
	if in.p == in.n {
		if err := in.out.flush(); err != nil {
			return 0, err
		}
		n, err := in.r.Read(in.buf[:])
		if n <= 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
		in.p, in.n = 0, n
	}
	c := in.buf[in.p]
	in.p++
	return c, nil
}

func (in *smallIn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c, err := in.ReadByte()
	if err != nil {
		return 0, err
	}
	b[0] = c
	return 1, nil
}
