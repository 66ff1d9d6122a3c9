package account

import (
	"errors"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

func TestIDs(t *testing.T) {
	root, err := user.Lookup("root")
	if err != nil {
		t.Skipf("no root account: %v", err)
	}
	rootGroup, err := user.LookupGroupId(root.Gid)
	if err != nil {
		t.Skipf("no group %s: %v", root.Gid, err)
	}
	uids, gids, err := IDs([]string{"root", "root"}, []string{rootGroup.Name})
	if err != nil || len(uids) != 2 || strconv.Itoa(uids[0]) != root.Uid || len(gids) != 1 || strconv.Itoa(gids[0]) != root.Gid {
		t.Errorf("IDs: %v %v %v", uids, gids, err)
	}
	for _, tc := range []struct {
		users, groups []string
		want          string
	}{
		{[]string{"root", "qmailkit-no-such-user"}, []string{"qmailkit-no-such-group"}, "fatal: unable to find user qmailkit-no-such-user\n"},
		{[]string{"root"}, []string{rootGroup.Name, "qmailkit-no-such-group"}, "fatal: unable to find group qmailkit-no-such-group\n"},
	} {
		_, _, err := IDs(tc.users, tc.groups)
		var e *Error
		if !errors.As(err, &e) || Fatal(err) != tc.want {
			t.Errorf("%v %v: %v", tc.users, tc.groups, err)
		}
	}
	if got := Fatal(errors.New("x")); got != "fatal: x\n" {
		t.Errorf("Fatal: %q", got)
	}
}

// Command gives a program accounts that the system does not have.
func TestCommand(t *testing.T) {
	if why := CanIsolate(); why != "" {
		t.Skip(why)
	}
	dir := t.TempDir()
	passwd, group := dir+"/passwd", dir+"/group"
	os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\nqmailkit-acct:x:4242:4243::/:/bin/false\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\nqmailkit-grp:x:4244:\n"), 0o644)
	out, err := Command(passwd, group, "sh", "-c", "grep -c qmailkit- /etc/passwd /etc/group").CombinedOutput()
	if err != nil || string(out) != "/etc/passwd:1\n/etc/group:1\n" {
		t.Errorf("%v: %s", err, out)
	}
	if b, _ := os.ReadFile("/etc/passwd"); strings.Contains(string(b), "qmailkit-acct") {
		t.Error("the system's /etc/passwd changed")
	}
}
