package smtpserver

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeQueue writes a qmail-queue stand-in that saves fd 0 and fd 1 to
// files and exits with code (and writes text to fd 6 for 82).
func fakeQueue(t *testing.T, code int, text string) (prog, dir string) {
	t.Helper()
	dir = t.TempDir()
	prog = filepath.Join(dir, "qmail-queue")
	s := "#!/bin/sh\ncat > \"$0.msg\"\ncat 0<&1 > \"$0.env\"\n"
	if text != "" {
		s += "printf '%s' '" + text + "' >&6\n"
	}
	s += "exit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(prog, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
	return prog, dir
}

// The EHLO session's bytes through qmail-queue's descriptors, and the
// replies to qmail-queue's exit codes (see qmail-queue(8)).
var _ Enqueuer = (*QmailQueue)(nil)

func TestQmailQueue(t *testing.T) {
	tests := []struct {
		code  int
		text  string
		reply string
	}{
		{0, "", "250 ok 1795300075 qp *"},
		{71, "", "451 mail server temporarily rejected message (#4.3.0)"},
		{31, "", "554 mail server permanently rejected message (#5.3.0)"},
		{53, "", "451 qq write error or disk full (#4.3.0)"},
		{11, "", "554 envelope address too long for qq (#5.1.3)"},
		{35, "", "554 qq permanent problem (#5.3.0)"},
		{99, "", "451 qq temporary problem (#4.3.0)"},
		{82, "Dno such user here (#5.1.1)", "554 no such user here (#5.1.1)"},
		{82, "Zover quota (#4.2.2)", "451 over quota (#4.2.2)"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			prog, _ := fakeQueue(t, tt.code, tt.text)
			srv := compatServer(nil)
			srv.Enqueuer = &QmailQueue{Path: prog}
			c := start(t, srv, qmailEnv())
			c.expect("220 mx.example.org ESMTP")
			c.send("EHLO client.example\r\n")
			c.reply()
			c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
			c.expect("250 ok")
			c.expect("250 ok")
			c.expect("354 go ahead")
			c.send("Subject: hi\r\n\r\n..dot\r\n.x\r\nbody\rbare cr\r\n.\r\n")
			c.expect(tt.reply)
			msg, _ := os.ReadFile(prog + ".msg")
			env, _ := os.ReadFile(prog + ".env")
			want := "Received: from client.example (192.0.2.9)\n  by mx.example.org with SMTP; 21 Nov 2026 22:27:55 -0000\nSubject: hi\n\n.dot\nx\nbody\rbare cr\n"
			if string(msg) != want {
				t.Errorf("fd 0: %q", msg)
			}
			if string(env) != "Fa@b.example\x00Tc@d.example\x00\x00" {
				t.Errorf("fd 1: %q", env)
			}
		})
	}
}

// A rejected message never gets an envelope, so qmail-queue queues nothing.
func TestQmailQueueRejected(t *testing.T) {
	prog, _ := fakeQueue(t, 0, "")
	srv := compatServer(nil)
	srv.Enqueuer = &QmailQueue{Path: prog}
	srv.MaxMessageBytes = 5
	c := start(t, srv, qmailEnv())
	c.expect("220 *")
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect("250 ok")
	c.expect("250 ok")
	c.expect("354 go ahead")
	c.send("0123456789\r\n.\r\n")
	c.expect("552 sorry, that message size exceeds my databytes limit (#5.3.4)")
	if env, _ := os.ReadFile(prog + ".env"); len(env) != 0 {
		t.Errorf("envelope written for a rejected message: %q", env)
	}
}

func TestQmailQueueMissing(t *testing.T) {
	srv := compatServer(nil)
	srv.Enqueuer = &QmailQueue{Path: filepath.Join(t.TempDir(), "nope")}
	c := start(t, srv, qmailEnv())
	c.expect("220 *")
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect("250 ok")
	c.expect("250 ok")
	c.expect("354 go ahead")
	c.send("x\r\n.\r\n")
	c.expect("451 unable to exec qq (#4.3.0)")
}
