"""aiosmtpd with STARTTLS and AUTH, for smtpclient's smarthost interop test.

aiosmtpd's command-line server has no way to accept credentials, so this
starts aiosmtpd's SMTP class itself, as its command line does, adding an
authenticator:

    python3 aiosmtpd_auth.py HOST PORT CERT KEY USER PASSWORD MECHANISMS DIR

MECHANISMS is the comma-separated list of AUTH mechanisms offered (of
aiosmtpd's built-in PLAIN and LOGIN). The server requires STARTTLS before
AUTH and AUTH before MAIL; transactions are recorded to DIR by
aiosmtpd_recorder.Recorder, with the login and mechanism that authenticated.
"""

import asyncio
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from aiosmtpd_recorder import Recorder


class Login:
    def __init__(self, mechanism, login):
        self.mechanism = mechanism
        self.login = login


def main():
    host, port, cert, key, user, password, mechanisms, directory = sys.argv[1:]
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_context.load_cert_chain(cert, key)
    exclude = {"PLAIN", "LOGIN"} - set(mechanisms.split(","))

    def authenticator(server, session, envelope, mechanism, data):
        ok = (isinstance(data, LoginPassword)
              and data.login == user.encode()
              and data.password == password.encode())
        # handled=False: aiosmtpd replies 535 itself on failure.
        return AuthResult(success=ok, handled=False, auth_data=Login(mechanism, data.login.decode(errors="replace")))

    handler = Recorder(directory)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, data_size_limit=1048576, tls_context=tls_context,
                     require_starttls=True, auth_required=True, auth_require_tls=True,
                     auth_exclude_mechanism=exclude, authenticator=authenticator),
        host=host, port=int(port)))
    loop.run_forever()


if __name__ == "__main__":
    main()
