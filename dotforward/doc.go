// Package dotforward reads sendmail-style .forward files and acts on them
// as dot-forward 0.71 does, the add-on qmail sites run from a .qmail file
// ("|dot-forward .forward", see dot-forward(1)) so that users keep their
// ~/.forward. [Config.Parse] reads a file into entries (addresses to
// forward to, programs, direct delivery); [Deliverer.Deliver] runs the
// programs and forwards the message; [Deliverer.Plan] says what it would
// do, as dot-forward -n.
//
//	d := &dotforward.Deliverer{
//		Config: dotforward.Config{User: "joe", Host: "example.net",
//			DefaultHost: "example.net", DefaultDomain: "example.net", PlusDomain: "example.net"},
//		Sender: os.Getenv("NEWSENDER"), DTLine: os.Getenv("DTLINE"),
//		Forwarder: &dotqmail.QueueProgram{},
//	}
//	res, err := d.Deliver(ctx, []string{".forward"}, os.Stdin)
//	os.Exit(dotforward.ExitCode(res, err)) // 0, 99, 100 or 111
//
// # Format
//
// A .forward file is read line by line; a line starting with '#' is a
// comment, and there are no continuation lines. Every other line is an RFC
// 822 address list, read with qmail-inject's tokenizer: quoted strings,
// comments in parentheses, "Name <address>", backslash quoting; group
// syntax (':' and ';') is ignored.
//
//	joe                      the user himself: direct delivery
//	\joe, bob@example.org    a copy to the user and one forwarded
//	"|vacation joe"          a program (quoted: unquoted, "joe" is an address)
//	carol, plain+            carol@defaulthost; plain+@defaulthost
//	u@h+                     u@h.plusdomain
//	/var/mail/joe            refused: file deliveries are not supported
//
// The addresses of a line are handled right to left, the lines top to
// bottom. A program runs as soon as it is found; forwards are collected
// and sent as one message after the file's last line, with qmail-local's
// Delivered-To line in front and $NEWSENDER as envelope sender.
//
// # Exit codes
//
// The result is dot-forward's exit code ([ExitCode]), which qmail-local
// reads as any program's: 99 when the file forwarded or ran a program (the
// following .qmail lines are skipped), 0 when it asked for direct delivery
// or no file applied (the next line, typically ./Mailbox, delivers), 100
// and 111 for permanent and temporary failures, with dot-forward's
// message ([Error]).
//
// # Security
//
// Files are opened without blocking, so a FIFO named .forward reads as
// empty or fails at once; a symbolic link is followed, as the user made
// it. Lines ([Config.MaxLine]) and one file's recipients
// ([Deliverer.MaxForward]) are bounded, so a huge file or one full of NUL
// bytes fails with "out of memory" instead of exhausting memory. Programs
// run with the caller's rights and environment, as the user's own
// commands; there is no time limit here (qmail-local's delivery time
// limit bounds the whole of dot-forward), but a cancelled context kills
// the running program.
//
// # Compatibility
//
// Behaviour, messages and exit codes are dot-forward 0.71's, checked
// against Debian's binary: addresses are C strings there, so one is cut at
// a NUL byte; an address that is only a comment or "<>" is skipped; a
// directory named .forward fails with "unable to read .forward: is a
// directory". Differences: the line and recipient limits above, where
// dot-forward grows without bound; and through dotqmail.QueueProgram a
// qmail-queue that exits 82 with a text on descriptor 6 (notqmail's
// custom error) gets that text reported, where dot-forward 0.71 says "qq
// temporary problem (#4.3.0)".
package dotforward
