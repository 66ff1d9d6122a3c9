#!/usr/bin/env python3
"""The IMAP side of examples/mta/dovecot's test: Python's imaplib against
Dovecot. Usage: imap.py HOST PORT USER PASSWORD [login]. Prints one JSON
object with what it saw; the Go test checks it. With "login", it only
tries to log in."""
import imaplib
import json
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
only_login = len(sys.argv) > 5 and sys.argv[5] == "login"


def text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


if only_login:
    c = imaplib.IMAP4(host, port)
    c.socket().settimeout(30)
    try:
        out["login"] = c.login(user, password)[0]
    except imaplib.IMAP4.error as e:
        out["login"] = "refused: " + text(e)
    print(json.dumps(out))
    sys.exit(0)

c = imaplib.IMAP4(host, port)
c.socket().settimeout(30)
try:
    c.login(user, password + "x")
    out["wrong_password"] = "accepted"
except imaplib.IMAP4.error as e:
    out["wrong_password"] = "refused: " + text(e)
c.logout()

c = imaplib.IMAP4(host, port)
c.socket().settimeout(30)
typ, _ = c.login(user, password)
out["login"] = typ
typ, data = c.select("INBOX")
out["inbox_count"] = int(data[0])
typ, data = c.uid("SEARCH", None, "ALL")
uids = data[0].split()
typ, data = c.uid("FETCH", uids[0], "(BODY.PEEK[])")
out["first_message"] = text(data[0][1])

typ, data = c.create("Archive")
out["create"] = typ
typ, data = c.uid("MOVE", uids[0], "Archive")
out["move"] = typ

for i in range(3):
    typ, data = c.append("INBOX", None, None, ("Subject: appended %d\r\n\r\nby IMAP\r\n" % i).encode())
    out["append%d" % i] = typ + " " + text(data[0])

typ, data = c.getquotaroot("INBOX")
out["quota"] = [text(x) for x in data[1]]
c.logout()
print(json.dumps(out))
