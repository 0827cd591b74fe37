"""smtpkit serve beside the private Dovecot, for the AUTH tests: one
submission listener (STARTTLS, AUTH, a certificate the server makes
itself) whose passwords are checked either by a passwd_file or by Dovecot
over its auth-client socket (dovecot_auth), and the raw dialogue helpers of
the TLS tests.

    srv = sasl_server(server, tmp_path, dovecot_auth=dv.auth_socket)
    d = tls_dialog(srv)       # EHLO, STARTTLS, EHLO done; d.caps
    d.cmd("AUTH PLAIN " + plain_auth("alice", "secret"))
"""

import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tls"))

from tls_helpers import Dialog, plain_auth  # noqa: E402,F401


def sasl_server(server, tmp_path, passwd_file=None, dovecot_auth=None, limits=None, extra="",
                start=True):
    lim = {"auth_failure_delay_ms": 300}
    lim.update(limits or {})
    # A certificate of its own per server (each generates and owns it).
    n = 0
    while (tmp_path / f"tls{n}").exists():
        n += 1
    tls = tmp_path / f"tls{n}"
    text = "\n".join([
        f'tls_certificate = "{tls / "cert.pem"}";',
        f'tls_key = "{tls / "key.pem"}";',
        "tls_generate_if_missing = true;",
        f'passwd_file = "{passwd_file}";' if passwd_file else "",
        f'dovecot_auth = "{dovecot_auth}";' if dovecot_auth else "",
        extra,
    ])
    srv = server(limits=lim, extra=text, listener="starttls = true; auth = true;", start=start)
    srv.cert = tls / "cert.pem"
    return srv


def tls_dialog(srv):
    """EHLO, STARTTLS, EHLO again: d.caps is the capability list under TLS,
    d.plain_caps the one before."""
    d = Dialog(srv.host, srv.port)
    d.plain_caps = d.ehlo()
    d.starttls(ssl.create_default_context(cafile=str(srv.cert)))
    d.caps = d.ehlo()
    return d


def auth_line(ehlo_lines):
    """The AUTH capability of an EHLO reply: the mechanism names, or None."""
    for line in ehlo_lines:
        words = line.split()
        if words and words[0].upper() == "AUTH":
            return [w.upper() for w in words[1:]]
    return None
