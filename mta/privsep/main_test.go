package privsep

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestMain runs the roles this package's tests start copies of the test
// binary in: ChildMain's (the helper, qmail-local, a mailbox agent) and
// dropMain's.
func TestMain(m *testing.M) {
	// TestReapCountsDeliveriesOfTheScan's stand-ins are named qmail-local
	// but are not the helper's: they run their test.
	if os.Getenv("QMAILKIT_REAP_CHILD") == "" && IsChild() {
		os.Exit(ChildMain())
	}
	if ids := os.Getenv(dropEnv); ids != "" {
		os.Exit(dropMain(ids))
	}
	os.Exit(m.Run())
}

// dropEnv makes the test binary drop root to the uid:gid it holds and
// print its ids (TestDrop).
const dropEnv = "PRIVSEP_TEST_DROP"

// dropMain is Drop in a process of its own, which prints its ids from
// /proc afterwards.
func dropMain(ids string) int {
	u, g, _ := strings.Cut(ids, ":")
	uid, _ := strconv.Atoi(u)
	gid, _ := strconv.Atoi(g)
	if err := Drop(uid, gid); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "Uid:" || f[0] == "Gid:" || f[0] == "Groups:") {
			fmt.Println(strings.Join(f, " "))
		}
	}
	return 0
}
