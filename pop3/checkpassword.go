package pop3

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Checkpassword runs a program with the checkpassword interface: the
// credentials "user\0secret\0timestamp\0" on its fd 3, exit 0 (after
// running the rest of its arguments as the user, in the user's home
// directory), 1 for a bad login, 111 for a temporary failure.
//
// It serves two ways. As an [Authenticator] it runs Command followed by
// Reply, a small program that writes who the user is to fd 4 (Dovecot's
// checkpassword-reply does the same), and the in-process server then
// serves the user's Maildir. As a [Handoff] it is qmail-popup: it runs
// Command with the client's connection as its standard input and output,
// so that the chain ("checkpassword qmail-pop3d Maildir") serves the
// session itself, in its own process under the user's uid.
type Checkpassword struct {
	// Command is the program and its arguments: for Handoff the whole
	// chain after qmail-popup's host name, such as {"/bin/checkpassword",
	// "qmail-pop3d", "Maildir"}; for Authenticate the checkpassword
	// program and any arguments of its own, to which Reply is appended.
	// The program is found in $PATH when it has no slash.
	Command []string
	// Reply is what Authenticate has checkpassword run on success. Nil
	// means /bin/sh with a script writing USER, HOME, SHELL, the working
	// directory and the uid and gid to fd 4, NUL-separated.
	Reply []string
	// Env is the environment the program starts with; nil means the
	// process's own. The connection's variables (TCPREMOTEIP, ...) are
	// added to it, as tcpserver would have set them.
	Env []string
	// Stderr receives the program's standard error; nil means os.Stderr,
	// which qmail-popup's child inherits.
	Stderr io.Writer
	// Timeout bounds an Authenticate run. Zero means 60 s. A Handoff
	// runs as long as the session it serves.
	Timeout time.Duration
}

var (
	_ Authenticator = (*Checkpassword)(nil)
	_ Handoff       = (*Checkpassword)(nil)
)

// defaultReply is the script Authenticate has checkpassword run: it
// reports the environment checkpassword set up.
var defaultReply = []string{"/bin/sh", "-c", `printf 'USER=%s\0HOME=%s\0SHELL=%s\0PWD=%s\0UID=%s\0GID=%s\0' "$USER" "$HOME" "$SHELL" "$(pwd -P)" "$(id -u)" "$(id -g)" >&4`}

// CheckpasswordInput is the data a checkpassword program reads on fd 3:
// user, secret and challenge, each followed by a NUL.
func CheckpasswordInput(c Credentials) []byte {
	b := make([]byte, 0, len(c.User)+len(c.Secret)+len(c.Challenge)+3)
	b = append(b, c.User...)
	b = append(b, 0)
	b = append(b, c.Secret...)
	b = append(b, 0)
	b = append(b, c.Challenge...)
	return append(b, 0)
}

func (cp *Checkpassword) command(ctx context.Context, argv []string, env map[string]string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("pop3: checkpassword: no command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	base := cp.Env
	if base == nil {
		base = os.Environ()
	}
	cmd.Env = append([]string(nil), base...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = cp.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	return cmd, nil
}

// run starts cmd with the credentials on fd 3, as qmail-popup's
// doanddie(): the pipe's read end becomes the child's fd 3, the data is
// written and the write end closed, the copy of the password is wiped,
// and the child is waited for. extra files become fd 4 and up.
func run(cmd *exec.Cmd, cred Credentials, extra ...*os.File) error {
	r, w, err := os.Pipe()
	if err != nil {
		return &ReplyError{Text: "unable to open pipe", Err: err}
	}
	cmd.ExtraFiles = append([]*os.File{r}, extra...)
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return &startError{err}
	}
	r.Close()
	data := CheckpasswordInput(cred)
	_, werr := w.Write(data)
	clear(data)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	err = cmd.Wait()
	if werr != nil {
		return &ReplyError{Text: "unable to write pipe", Err: werr}
	}
	return err
}

// startError is a failure to start the program. qmail-popup's child
// exits 1 when exec fails, which reads as "authorization failed".
type startError struct{ err error }

func (e *startError) Error() string { return "pop3: checkpassword: " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// exitStatus returns a finished program's exit code, or -1 if a signal
// killed it.
func exitStatus(err error) (code int, signaled bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return -1, false
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, true
	}
	return ee.ExitCode(), false
}

// Handoff runs Command on the connection, as qmail-popup runs its
// subprogram: fd 0 and 1 are the connection, fd 3 carries the credentials,
// and the program's exit status decides the reply: 0 none (the chain has
// served the session), killed by a signal [ErrChildCrashed], anything
// else [ErrAuthFailed]. The connection must be a TCP or Unix socket (or
// wrap one, as tcprules.Conn does), or come from [StdioConn]; a TLS
// connection cannot be handed to another process.
func (cp *Checkpassword) Handoff(ctx context.Context, c net.Conn, cred Credentials) error {
	in, out, dup, err := connFiles(c)
	if err != nil {
		return &ReplyError{Text: "unable to hand off the connection", Err: err}
	}
	if dup {
		defer in.Close()
	}
	cmd, err := cp.command(ctx, cp.Command, cred.Env)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout = in, out
	// No WaitDelay kill on ctx: the chain owns the session now, and
	// cancelling it kills the child, which ends the session.
	err = run(cmd, cred)
	if err == nil {
		return nil
	}
	if _, sig := exitStatus(err); sig {
		return fmt.Errorf("%w: %w", ErrChildCrashed, err)
	}
	var re *ReplyError
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrAuthFailed, err)
}

// connFiles returns the files a child gets as its standard input and
// output for a connection.
// dup reports that they are a duplicate descriptor, to be closed after.
func connFiles(c net.Conn) (in, out *os.File, dup bool, err error) {
	for {
		switch cc := c.(type) {
		case *stdioConn:
			return cc.in, cc.out, false, nil
		case *tls.Conn:
			return nil, nil, false, errors.New("TLS connection")
		case interface{ File() (*os.File, error) }:
			f, err := cc.File()
			return f, f, true, err
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			return nil, nil, false, fmt.Errorf("connection %T has no file descriptor", c)
		}
	}
}

// Authenticate runs Command and Reply with the credentials and reports
// the user Reply describes. Exit 1 is [ErrAuthFailed]; 2 (misuse), 111
// and everything else are temporary failures.
func (cp *Checkpassword) Authenticate(ctx context.Context, cred Credentials) (*User, error) {
	timeout := cp.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply := cp.Reply
	if reply == nil {
		reply = defaultReply
	}
	cmd, err := cp.command(ctx, append(append([]string(nil), cp.Command...), reply...), cred.Env)
	if err != nil {
		return nil, err
	}
	cmd.WaitDelay = time.Second
	rr, rw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pop3: checkpassword: %w", err)
	}
	defer rr.Close()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(&out, io.LimitReader(rr, 64<<10))
		done <- err
	}()
	err = run(cmd, cred, rw)
	rw.Close()
	<-done
	if err != nil {
		code, _ := exitStatus(err)
		switch {
		case code == 1:
			return nil, fmt.Errorf("pop3: checkpassword %s: %w", cp.Command[0], ErrAuthFailed)
		case code == 2:
			return nil, fmt.Errorf("pop3: checkpassword %s: misuse (exit 2)", cp.Command[0])
		}
		return nil, fmt.Errorf("pop3: checkpassword %s: temporary failure: %w", cp.Command[0], err)
	}
	u := &User{UID: -1, GID: -1}
	for _, kv := range strings.Split(out.String(), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "USER":
			u.Name = v
		case "HOME":
			u.Home = v
		case "SHELL":
			u.Shell = v
		case "PWD":
			if u.Home == "" {
				u.Home = v
			}
		case "UID":
			u.UID = atoiOr(v, -1)
		case "GID":
			u.GID = atoiOr(v, -1)
		}
	}
	if u.Home == "" {
		return nil, fmt.Errorf("pop3: checkpassword %s: succeeded but reported no home directory", cp.Command[0])
	}
	if u.Name == "" {
		u.Name = cred.User
	}
	return u, nil
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

// ErrCheckpasswordInput is the condition of fd 3 data that is not
// "user\0secret\0challenge\0": checkpassword's exit 2.
var ErrCheckpasswordInput = errors.New("pop3: malformed checkpassword input")

// MaxCheckpasswordInput is the most a checkpassword program reads from
// fd 3; more is treated as a bad password, as checkpassword does.
const MaxCheckpasswordInput = 512

// ParseCheckpasswordInput parses what a checkpassword program reads on
// fd 3: the user, the secret and the challenge, each terminated by NUL
// (anything after the third NUL is ignored). A missing terminator is
// [ErrCheckpasswordInput].
func ParseCheckpasswordInput(b []byte) (Credentials, error) {
	var f [3]string
	for i := range f {
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return Credentials{}, ErrCheckpasswordInput
		}
		f[i], b = string(b[:j]), b[j+1:]
	}
	return Credentials{User: f[0], Secret: f[1], Challenge: f[2]}, nil
}

// EnvMap turns an environment list ("K=V" strings, as os.Environ returns)
// into the map [Server.ServeConn] takes.
func EnvMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}
