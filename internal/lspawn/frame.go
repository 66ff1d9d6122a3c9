package lspawn

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
)

// maxRecord bounds a record: an id, two addresses of at most a few
// thousand bytes, a report of at most 3000 and an error text (cut to
// maxErrText).
const maxRecord = 64 << 10

// maxErrText bounds the error text of a reply.
const maxErrText = 8 << 10

// ErrFormat is a record that does not follow the protocol.
var ErrFormat = errors.New("lspawn: malformed record")

// appendRecord appends a record of kind with fields as netstrings.
func appendRecord(b []byte, kind byte, fields ...string) []byte {
	return appendFields(append(b, kind), fields...)
}

// appendFields appends fields as netstrings.
func appendFields(b []byte, fields ...string) []byte {
	for _, f := range fields {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
		b = append(b, ',')
	}
	return b
}

// parseRecord splits a record into its kind and its fields, which must
// number n; a negative n takes any number.
func parseRecord(b []byte, n int) (kind byte, fields []string, err error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: empty", ErrFormat)
	}
	kind, b = b[0], b[1:]
	fields = make([]string, 0, max(n, 0))
	for len(b) > 0 {
		i := 0
		for i < len(b) && i < 7 && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == 0 || i == len(b) || b[i] != ':' || (i > 1 && b[0] == '0') {
			return 0, nil, fmt.Errorf("%w: bad netstring length", ErrFormat)
		}
		size, _ := strconv.Atoi(string(b[:i])) // at most 7 digits
		b = b[i+1:]
		if size >= len(b) || b[size] != ',' {
			return 0, nil, fmt.Errorf("%w: netstring overruns the record", ErrFormat)
		}
		if n >= 0 && len(fields) == n {
			return 0, nil, fmt.Errorf("%w: more than %d fields", ErrFormat, n)
		}
		fields = append(fields, string(b[:size]))
		b = b[size+1:]
	}
	if n >= 0 && len(fields) != n {
		return 0, nil, fmt.Errorf("%w: %d fields, want %d", ErrFormat, len(fields), n)
	}
	return kind, fields, nil
}

// parseID parses a decimal id.
func parseID(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: bad id %q", ErrFormat, s)
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad id %q", ErrFormat, s)
	}
	return id, nil
}

// rights returns the descriptors passed in a record's control data, which
// must number n (any number when n is negative). Every descriptor received is closed on error.
func rights(oob []byte, flags int, n int) ([]int, error) {
	var fds []int
	if len(oob) > 0 {
		msgs, err := syscall.ParseSocketControlMessage(oob)
		if err != nil {
			return nil, fmt.Errorf("%w: control data: %v", ErrFormat, err)
		}
		for _, m := range msgs {
			if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_RIGHTS {
				continue
			}
			got, err := syscall.ParseUnixRights(&m)
			if err != nil {
				closeAll(fds)
				return nil, fmt.Errorf("%w: control data: %v", ErrFormat, err)
			}
			fds = append(fds, got...)
		}
	}
	switch {
	case flags&syscall.MSG_CTRUNC != 0:
		closeAll(fds)
		return nil, fmt.Errorf("%w: descriptors cut off", ErrFormat)
	case n >= 0 && len(fds) != n:
		closeAll(fds)
		return nil, fmt.Errorf("%w: %d descriptors, want %d", ErrFormat, len(fds), n)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// oobSpace is room for the control data of two descriptors, and some to
// notice more.
var oobSpace = syscall.CmsgSpace(8 * 4)
