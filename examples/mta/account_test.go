package main

import (
	"errors"
	"log/slog"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// account is the unprivileged account the root tests run the mta as.
type account struct {
	name     string
	uid, gid int
}

var (
	accountOnce sync.Once
	testAcct    account
	accountErr  error
)

// testAccount returns the account qmailkittest, made with useradd if it
// does not exist: nobody is refused as the mta's account.
func testAccount(t *testing.T) account {
	t.Helper()
	accountOnce.Do(func() {
		const name = "qmailkittest"
		if _, err := user.Lookup(name); err != nil {
			if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
				"--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
				if _, lerr := user.Lookup(name); lerr != nil {
					accountErr = errors.New("useradd: " + err.Error() + ": " + string(out))
					return
				}
			}
		}
		u, err := user.Lookup(name)
		if err != nil {
			accountErr = err
			return
		}
		testAcct.name = name
		testAcct.uid, _ = strconv.Atoi(u.Uid)
		testAcct.gid, _ = strconv.Atoi(u.Gid)
	})
	if accountErr != nil {
		t.Skipf("no test account: %v", accountErr)
	}
	return testAcct
}

// TestLookupAccount: nobody and root are refused; without -user a missing
// qmailkit account is created (here by a fake useradd).
func TestLookupAccount(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	noCreate := func(string) error { return errors.New("must not create") }
	for _, tt := range []struct {
		name, want string
	}{
		{"nobody", "shared with other daemons"},
		{"nfsnobody", "shared with other daemons"},
		{"root", "uid or gid 0"},
		{"no-such-account-qk", "create it or choose one with -user"},
	} {
		if _, _, err := lookupAccount(tt.name, noCreate, discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("-user %s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := user.Lookup(defaultAccount); err == nil {
		t.Skipf("account %s exists here: its creation is not tried", defaultAccount)
	}
	var created []string
	_, _, err := lookupAccount("", func(name string) error { created = append(created, name); return errors.New("no useradd here") }, discard)
	if len(created) != 1 || created[0] != defaultAccount || err == nil || !strings.Contains(err.Error(), "creating it failed") {
		t.Errorf("no qmailkit account: created %q, err %v", created, err)
	}
}
