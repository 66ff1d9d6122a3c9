package qmailkit_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
)

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("x"), false},
		{"marked", qmailkit.Permanent(errors.New("x")), true},
		{"wrapped mark", fmt.Errorf("delivery: %w", qmailkit.Permanent(fs.ErrNotExist)), true},
		{"550 reply", smtpserver.Reply{Code: 550, Text: "no"}, true},
		{"451 reply", smtpserver.Reply{Code: 451, Text: "later"}, false},
	} {
		if got := qmailkit.IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s: IsPermanent = %v", tc.name, got)
		}
		if got := smtpclient.IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s: smtpclient.IsPermanent = %v", tc.name, got)
		}
	}
	if qmailkit.Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	err := qmailkit.Permanent(fs.ErrNotExist)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != fs.ErrNotExist.Error() {
		t.Errorf("Permanent hides its error: %v", err)
	}
}

func ExampleIsPermanent() {
	err := fmt.Errorf("delivering to joe: %w", qmailkit.Permanent(errors.New("no such user")))
	fmt.Println(qmailkit.IsPermanent(err), err)
	// Output: true delivering to joe: no such user
}
