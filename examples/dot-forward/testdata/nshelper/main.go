// Command nshelper runs a program for the interop tests of dot-forward:
// started in a private mount namespace, it bind-mounts $DFX_QMAIL over
// /var/lib/qmail, changes to $DFX_DIR, drops to uid and gid $DFX_UID when
// set, and execs its arguments with the rest of its environment.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	err := run()
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(125)
}

func run() error {
	if len(os.Args) < 2 {
		return fmt.Errorf("usage: nshelper program [arg ...]")
	}
	if err := syscall.Mount(os.Getenv("DFX_QMAIL"), "/var/lib/qmail", "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	if err := os.Chdir(os.Getenv("DFX_DIR")); err != nil {
		return err
	}
	if s := os.Getenv("DFX_UID"); s != "" {
		id, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		if err := syscall.Setgroups(nil); err != nil {
			return err
		}
		if err := syscall.Setgid(id); err != nil {
			return err
		}
		if err := syscall.Setuid(id); err != nil {
			return err
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DFX_") {
			env = append(env, kv)
		}
	}
	return syscall.Exec(os.Args[1], os.Args[1:], env)
}
