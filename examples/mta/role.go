package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/mta/privsep"
)

// role runs the program in a hidden role, if it was started in one, and
// returns its exit code. The mta started as root runs copies of itself
// that privsep.ChildMain runs: the delivery helper that stays root
// (qmail-lspawn), qmail-local under each recipient's uid (by argv[0], as
// dotqmail.Local names it) and the mailbox agents. Run as
// QMAILHOME/bin/qmail-queue, bin/qmail-inject, bin/sendmail or
// bin/fastforward (links the mta makes to itself) it is that program, for
// forwards and for mail from the command line.
func role() (int, bool) {
	switch {
	case privsep.IsChild():
		return privsep.ChildMain(), true
	case filepath.Base(os.Args[0]) == "qmail-queue":
		return queueMain(os.Args[0], os.Getenv("QMAILHOME"), os.Stdin, os.NewFile(1, "envelope")), true
	case filepath.Base(os.Args[0]) == "qmail-inject", filepath.Base(os.Args[0]) == "sendmail":
		return injectMain(os.Args, os.Environ()), true
	case filepath.Base(os.Args[0]) == "fastforward":
		return fastforwardMain(os.Args, os.Environ()), true
	}
	return 0, false
}

// withoutQmailEnv drops from env the variables that say where a home and
// its qmail-queue are, and the roles' own.
func withoutQmailEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == "QMAILHOME" || name == "QMAILQUEUE" || strings.HasPrefix(name, "QMAILKIT_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
