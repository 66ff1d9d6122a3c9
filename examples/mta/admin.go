package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/webadmin"
)

// serveAdmin serves the web admin on l (-admin): HTTPS with the mta's
// certificate, or, without one, plain HTTP on a loopback address only.
// Its administrators are users/adminpasswd's; mailboxes log in as
// name@domain. Logins share the POP3 and SMTP AUTH limiter. The function
// returned stops it.
func serveAdmin(sys *mta.System, l net.Listener, tc *tls.Config, home string, logger *slog.Logger, handler slog.Handler) (func(), error) {
	if sys.Virtual() == nil {
		return nil, errors.New("-admin: the home has no virtual mailboxes (vmail/)")
	}
	plain := tc == nil
	if plain && !loopback(l.Addr()) {
		return nil, fmt.Errorf("-admin %s: no control/servercert.pem, and the web admin is served in plain HTTP only on loopback", l.Addr())
	}
	adm, err := webadmin.New(webadmin.Options{
		Manager:   sys.Virtual(),
		Admins:    &pop3.PasswdFile{Path: mta.AdminPasswdPath(home)},
		Limiter:   sys.AuthLimiter,
		Queue:     queueStatus(sys),
		PlainHTTP: plain,
		Logger:    logger.With("part", "webadmin"),
	})
	if err != nil {
		return nil, err
	}
	hs := &http.Server{
		Handler:           adm,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	if plain {
		logger.Warn("mta: the web admin is served in plain HTTP (no control/servercert.pem); on loopback only", "addr", l.Addr().String())
		go hs.Serve(l)
	} else {
		hs.TLSConfig = tc.Clone()
		go hs.ServeTLS(l, "", "")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}

// queueStatus gives the web admin's queue page the scheduler's view.
func queueStatus(sys *mta.System) func(ctx context.Context) (webadmin.QueueStatus, error) {
	return func(ctx context.Context) (webadmin.QueueStatus, error) {
		es, err := sys.Scheduler.List(ctx)
		if err != nil {
			return webadmin.QueueStatus{}, err
		}
		st := webadmin.QueueStatus{Messages: len(es), ByState: map[string]int{}}
		for _, e := range es {
			if st.Oldest.IsZero() || e.Birth.Before(st.Oldest) {
				st.Oldest = e.Birth
			}
			switch {
			case e.Held:
				st.ByState["held"]++
			case e.Queued:
				st.ByState["todo"]++
			case e.Bouncing:
				st.ByState["bouncing"]++
			case e.Active > 0:
				st.ByState["delivering"]++
			default:
				st.ByState["waiting"]++
			}
		}
		return st, nil
	}
}

func loopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}

// adminInfo is what the banner says of the web admin.
type adminInfo struct {
	l        net.Listener // nil: no web admin
	plain    bool         // plain HTTP (no certificate)
	password string       // the administrator's password when just made
}

// print writes the web admin's lines of the banner: its URL and the
// administrator's login, with the password the first time.
func (a adminInfo) print(w io.Writer) {
	if a.l == nil {
		return
	}
	scheme := "https"
	if a.plain {
		scheme = "http"
	}
	pw := "(hashed in users/adminpasswd)"
	if a.password != "" {
		pw = a.password + " (shown once)"
	}
	fmt.Fprintf(w, "  web admin   %-21s log in as admin, password %s\n", scheme+"://"+a.l.Addr().String()+"/", pw)
}
