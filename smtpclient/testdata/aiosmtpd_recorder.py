"""Recorder: an aiosmtpd handler for smtpclient's interop tests.

It is loaded by aiosmtpd's own command-line server (Debian's python3-aiosmtpd),
with this directory on PYTHONPATH:

    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c aiosmtpd_recorder.Recorder \
        [--tlscert CERT --tlskey KEY] DIR

Each transaction that reaches the end of DATA is written to DIR before the
250 reply: NNNNNN.eml holds the message bytes as aiosmtpd received them
(dot-unstuffed, CRLF line ends kept), NNNNNN.json the envelope and the
session (HELO name, peer, TLS version and cipher or null, the login and
mechanism that authenticated or null). The .json is
renamed into place last, so a reader that sees it sees both files whole.
"""

import itertools
import json
import os


class Recorder:
    def __init__(self, directory):
        self.directory = directory
        self.count = itertools.count(1)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("Recorder takes one argument: the directory to record into")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        n = next(self.count)
        base = os.path.join(self.directory, "%06d" % n)
        tls = None
        if session.ssl is not None:
            obj = session.ssl.get("ssl_object")
            tls = {"version": obj.version(), "cipher": obj.cipher()[0]}
        record = {
            "helo": session.host_name,
            "esmtp": session.extended_smtp,
            "peer": list(session.peer)[:2],
            "tls": tls,
            "auth": None,
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
        }
        if session.authenticated:
            data = session.auth_data
            record["auth"] = {"mechanism": getattr(data, "mechanism", None),
                              "login": getattr(data, "login", None)}
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(base + ".tmp", base + ".json")
        return "250 2.0.0 Ok: recorded %d" % n
