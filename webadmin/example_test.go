package webadmin_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/qmailkit/qmailkit/authlimit"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
	"github.com/qmailkit/qmailkit/webadmin"
)

// A web admin over a Manager: a page without a session goes to the login
// form.
func Example() {
	dir, _ := os.MkdirTemp("", "webadmin-example-")
	defer os.RemoveAll(dir)
	store, err := sqlstore.OpenSQLite(filepath.Join(dir, "vmail.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	quiet := slog.New(slog.DiscardHandler)
	mgr, err := vmail.New(vmail.Options{Store: store, Dir: filepath.Join(dir, "domains"), UID: -1, GID: -1, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	adm, err := webadmin.New(webadmin.Options{
		Manager:   mgr,
		PlainHTTP: true, // a test on loopback; the mail server serves HTTPS
		Logger:    quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, path := range []string{"/", "/login"} {
		rec := httptest.NewRecorder()
		adm.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code, rec.Header().Get("Location"))
	}
	// Output:
	// / 303 /login
	// /login 200
}

// How a mail server serves it: over HTTPS with its certificate, system
// administrators in a password file, logins throttled by the Limiter of
// POP3 and SMTP AUTH, and the timeouts of an exposed HTTP server.
func Example_server() {
	var (
		mgr     *vmail.Manager     // the mail server's
		limiter *authlimit.Limiter // shared with POP3 and SMTP AUTH
		cert    tls.Certificate    // the mail server's
		l       net.Listener       // from -admin ADDR
		home    = "/var/qmail"     // QMAILHOME
		ctx     = context.Background()
	)
	adm, err := webadmin.New(webadmin.Options{
		Manager: mgr,
		Admins:  &pop3.PasswdFile{Path: filepath.Join(home, "users/adminpasswd")},
		Limiter: limiter,
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           adm,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
	go srv.ServeTLS(l, "", "")
	<-ctx.Done()
	srv.Shutdown(context.Background())
}
