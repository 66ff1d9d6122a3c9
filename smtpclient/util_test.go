package smtpclient

import (
	"bufio"
	"io"
)

var ioEOF = io.EOF

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }
