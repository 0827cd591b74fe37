"""Fixtures for the TLS and AUTH end-to-end tests: `smtpkit serve` with the
three listener kinds of a real mail host, a password file made with
`smtpkit passwd`, and a certificate the server generates itself
(tls_generate_if_missing) unless a test brings its own.

    def test_x(tls_server):
        srv = tls_server()            # srv.port (MX, STARTTLS), srv.sub_port
                                      # (submission, STARTTLS, AUTH required),
                                      # srv.smtps_port (implicit TLS), srv.cert,
                                      # srv.ssl_context() trusting srv.cert
"""

import ssl
from pathlib import Path

import pytest
from tls_helpers import USERS, free_port, make_passwd

class TlsServer:
    def __init__(self, srv, sub_port, smtps_port, cert):
        self.srv = srv
        self.sub_port = sub_port
        self.smtps_port = smtps_port
        self.cert = Path(cert)

    def __getattr__(self, name):  # host, port, log(), wait_log(), messages(), ...
        return getattr(self.srv, name)

    def ssl_context(self, cafile=None):
        ctx = ssl.create_default_context(cafile=str(cafile or self.cert))
        return ctx


@pytest.fixture
def tls_server(server, smtpkit_bin, tmp_path):
    """Factory: tls_server(limits=None, extra="", cert=None, key=None, users=USERS,
    relay_queue=True, start=True) -> TlsServer."""

    def make(limits=None, extra="", cert=None, key=None, users=None, relay_queue=True,
             start=True, **kw):
        passwd = tmp_path / "passwd"
        make_passwd(smtpkit_bin, passwd, USERS if users is None else users)
        sub_port, smtps_port = free_port(), free_port()
        while smtps_port == sub_port:
            smtps_port = free_port()
        generate = cert is None
        cert = cert or tmp_path / "tls" / "cert.pem"
        key = key or tmp_path / "tls" / "key.pem"
        lim = {"auth_failure_delay_ms": 200}
        lim.update(limits or {})
        # The shared fixture writes one listener group; the further groups
        # ride in on its `listener` text (it closes the last brace itself).
        listener = (
            "starttls = true; auth = true; },\n"
            f'  {{ address = "127.0.0.1"; port = {sub_port}; starttls = true; auth = true; '
            "mail_requires_auth = true; },\n"
            f'  {{ address = "127.0.0.1"; port = {smtps_port}; implicit_tls = true; '
            "auth = true; mail_requires_auth = true;"
        )
        text = "\n".join([
            f'tls_certificate = "{cert}";',
            f'tls_key = "{key}";',
            f"tls_generate_if_missing = {'true' if generate else 'false'};",
            f'passwd_file = "{passwd}";',
            f'relay_queue = "{tmp_path / "queue"}";' if relay_queue else "",
            "delivery = { enabled = false; };" if relay_queue else "",  # queue only
            extra,
        ])
        srv = server(limits=lim, extra=text, listener=listener, start=start, **kw)
        return TlsServer(srv, sub_port, smtps_port, cert)

    return make
