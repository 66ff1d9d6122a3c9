package smtpclient

import (
	"bufio"
	"io"
)

var ioEOF = io.EOF

var errUnexpectedEOF = io.ErrUnexpectedEOF

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }
