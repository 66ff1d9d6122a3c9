// Package daemontools holds run scripts for daemontools (svscan and
// supervise, from Debian's daemontools package) that start the drop-in
// programs as the qmail literature ("Life with qmail") sets them up:
//
//	qmail-send/run, log/run     qmail-start becoming qmail-send; multilog as qmaill
//	qmail-smtpd/run, log/run    qmail-smtpd under tcpserver as qmaild, with tcp.smtp.cdb
//	qmail-pop3d/run, log/run    qmail-popup, checkpassword and qmail-pop3d under tcpserver
//
// Copy each directory to /var/qmail/supervise/NAME and link it into
// /service (mkdir /var/log/qmail owned by qmaill first); the variables at
// the top of each script (QMAIL, PORT, LISTEN, RULES, LOGDIR, ...) are the
// places to change. svc -h reloads, svc -a flushes the queue, svc -d stops.
// The test of this package runs all three under a real svscan.
// (examples/mta/run is the script for the mta, which is all three in one.)
package daemontools
