// Package webadmin is the web administration of virtual mail domains, the
// job qmailadmin did for vpopmail: a [Server] is an http.Handler of
// server-rendered pages, plain HTML forms with a little CSS and no
// script, over a [vmail.Manager].
//
// # Roles
//
// Who may do what is decided at every request from the session, never
// from a form value, as qmailadmin's roles are:
//
//   - A system administrator (a login of Options.Admins, the mta's
//     users/adminpasswd, or a mailbox with the vmail.SystemAdmin flag)
//     manages every domain: adds and deletes domains and alias domains,
//     sets their limits, and has the queue page.
//   - A domain administrator (a mailbox with vmail.DomainAdmin, or a
//     domain's postmaster) manages its own domain: its mailboxes (add,
//     delete, password, quota, real name, flags, forwarding,
//     autoresponder), aliases and catch-all. It may not touch a system
//     administrator's mailbox, nor set the SystemAdmin and Override flags.
//     The postmaster mailbox cannot be deleted, nor one's own.
//   - Any other mailbox is a user: it changes its own password (giving the
//     old one; refused with vmail.NoPasswordChange, the mailbox's or its
//     domain's), forwarding and autoresponder, on the page /me.
//
// A page or form of another domain, or one above the session's role,
// answers 403 Forbidden. A mailbox deleted, demoted or given a new
// password elsewhere loses its session's rights at the next request: a
// password change ends the mailbox's other sessions.
//
// # Pages
//
// /login, /domains (system administrators), /d/DOMAIN/ (its mailboxes,
// aliases, catch-all; limits and alias domains for system
// administrators), /d/DOMAIN/m/NAME (a mailbox), /me (one's own mailbox),
// /queue (when Options.Queue is set). Every change is a POST answered by
// a redirect (Post/Redirect/Get); a form with a bad value is shown again
// with the message next to the field (422 Unprocessable Entity). A quota
// is written as vpopmail's tools read it: 50M, 100K, 500C, 50M,500C or
// NOQUOTA.
//
// A login with "@" is a mailbox's (any form vmail.Manager.Authenticate
// reads after it); one without is a system administrator's of
// Options.Admins.
//
// # Compatibility
//
// The roles and what each form changes are qmailadmin's; the rest is new.
// There are no CGI command URLs and no session files in the Maildir
// (qmailadmin's USERDIR/Maildir/TIME.qw, found by a time in the URL):
// sessions are tokens in a cookie. Mailing lists (ezmlm), the
// installation hooks (.qmailadmin-hooks) and the perm_* rights of
// non-postmaster administrators are not offered. Forwarding refuses
// program and file lines ("|...", "/...") with a message where qmailadmin
// dropped them silently, and quotas typed in a form are read as
// vsetuserquota reads them (a bare number is bytes; qmailadmin's forms
// took megabytes).
//
// # Security
//
// Sessions are kept in memory, each under a random 256-bit token: a
// restart of the server logs everyone out. The token is in a cookie named
// "__Host-qmailkit-session", Secure, HttpOnly and SameSite=Strict, so the
// pages must be served over HTTPS (Options.PlainHTTP is for tests on
// loopback). A session ends after Options.IdleTimeout unused and
// Options.MaxAge after its login, and at logout.
//
// Every form carries the session's CSRF token and every POST without the
// right one is refused (403); the login form carries a token of its own,
// matched against a cookie. A POST whose Origin (or, without it, Referer)
// is not this server, as the connection's scheme and the Host header name
// it, or whose Sec-Fetch-Site is neither same-origin nor none, is refused
// too: behind a proxy, give it the original Host and serve HTTPS end to
// end.
//
// Logins (and the old password of a password change) go through an
// auth.Limiter per client address and account: after repeated failures
// an attempt waits, and one that would wait longer than
// Options.LoginWait is refused with a message even when its password is
// right. Passwords are never logged nor shown back in a form.
//
// Every answer has a Content-Security-Policy of default-src 'self' (no
// inline script or style runs), X-Frame-Options DENY and nosniff; pages
// are Cache-Control: no-store. Request bodies are limited to
// Options.MaxBodyBytes and every field has its own limit; all text shown
// is escaped by html/template.
package webadmin
