// Command except reverses the exit code of a program, a drop-in for qmail's except:
//
//	except program [ arg ... ]
//
// program exiting 0 gives 100 (bounce), 111 gives 111, anything else 0.
package main

import (
	"context"
	"os"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/dotqmail/helper"
)

func main() {
	env := os.Environ()
	os.Exit(helper.Except(context.Background(), os.Args[1:], helper.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr},
	}))
}
