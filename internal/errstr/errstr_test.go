package errstr

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

func TestText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{syscall.ENOENT, "file does not exist"},
		{syscall.Errno(0), "no error"},
		{syscall.ECONNREFUSED, "connection refused"},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, "access denied"},
		{fmt.Errorf("tcprules: %w", cdb.ErrCorrupt), "protocol error"},
		{cdb.ErrTooMuchData, "out of memory"},
		{syscall.Errno(4000), "unknown error"},
		{errors.New("something else"), "something else"},
	}
	for _, tt := range tests {
		if got := Text(tt.err); got != tt.want {
			t.Errorf("Text(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
