package smtpclient

import (
	"bufio"
	"io"
	"strconv"
)

var ioEOF = io.EOF

var errUnexpectedEOF = io.ErrUnexpectedEOF

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }

func itoa(n int) string { return strconv.Itoa(n) }
