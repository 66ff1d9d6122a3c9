package privsep_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/mta/privsep"
)

// The main of a program that starts as root: it binds port 25, starts the
// delivery helper, drops root for its own account, and runs the System
// from the qmail home /var/qmail (made by mta.Init as root, which gives
// control/ and users/ to root), handing the helper every local delivery
// and every POP3 maildrop of another uid.
func Example() {
	// First thing: the helper, qmail-local and the mailbox agents are
	// this program, started again with a role.
	if privsep.IsChild() {
		os.Exit(privsep.ChildMain())
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	const home = "/var/qmail"
	const uid, gid = 999, 999 // the program's own account: not root, not nobody
	fail := func(err error) {
		logger.Error(err.Error())
		os.Exit(1)
	}

	smtpL, err := net.Listen("tcp", ":25") // needs root
	if err != nil {
		fail(err)
	}
	popL, err := net.Listen("tcp", ":110")
	if err != nil {
		fail(err)
	}
	if err := privsep.CheckUsers(home); err != nil {
		logger.Error(err.Error() + ": as root run: " + privsep.UsersFix(home, gid))
	}
	if err := privsep.CheckControl(home, uid, gid); err != nil {
		logger.Warn(err.Error() + ": as root run: " + privsep.ControlFix(home, gid))
	}
	if err := privsep.CheckHome(home, uid, gid); err != nil {
		logger.Warn(err.Error() + ": as root run: " + privsep.HomeFix(home))
	}
	helper, err := privsep.Start(privsep.Options{Home: home, Logger: logger})
	if err != nil {
		fail(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		helper.Stop(ctx)
	}()
	if err := privsep.Drop(uid, gid); err != nil {
		fail(err)
	}

	cfg, err := mta.LoadHome(home, mta.Options{Logger: logger, LocalDeliverer: helper})
	if err != nil {
		fail(err)
	}
	sys, err := mta.New(cfg)
	if err != nil {
		fail(err)
	}
	defer sys.Close()
	tc, _ := sys.TLSConfig()
	var srv mta.Servers
	if srv.SMTP, err = sys.SMTP(false, tc, nil); err != nil {
		fail(err)
	}
	if srv.POP3, err = sys.POP3(tc); err != nil {
		fail(err)
	}
	srv.POP3.OpenMailbox = helper.OpenMailbox(srv.POP3)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Without its helper the program cannot deliver locally, nor start
	// another (it is no longer root): stop, and let a supervisor restart
	// it; nothing queued is lost.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-helper.Done()
		cancel()
	}()
	if err := sys.Serve(ctx, srv, mta.Listeners{SMTP: smtpL, POP3: popL}); err != nil {
		logger.Error(err.Error())
	}
}
