// Package systemd holds systemd units for the drop-in programs, started the
// way inetd and tcpserver start them but by systemd:
//
//	qmail-smtpd.socket, qmail-smtpd@.service   qmail-smtpd under tcp-env, one process per connection (Accept=yes)
//	qmail-pop3d.socket, qmail-pop3d@.service   qmail-popup, checkpassword, qmail-pop3d, one process per connection
//	qmail-send.service                          qmail-start becoming qmail-send
//
// (examples/mta has mta.service, Type=notify, and a .socket unit per role
// for socket activation.) The tests check the units with systemd-analyze
// verify and run qmail-smtpd as Accept=yes runs it, under Debian's
// systemd-socket-activate --accept --inetd.
package systemd
