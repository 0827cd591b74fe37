"""AUTH checked by Dovecot (dovecot_auth = its auth-client socket), against
the private Dovecot: good password 235, bad 535 after smtpkit's delay,
unknown user 535, the per-connection limit 421 as with passwd_file, the
mechanisms advertised follow Dovecot's auth_mechanisms, LOGIN passed on
step by step when Dovecot offers only LOGIN, Dovecot stopped (or never
there) 454 and never an accept, and back to 235 once Dovecot returns."""

import base64
import subprocess
import time

from private_dovecot import PrivateDovecot
from sasl_server import auth_line, plain_auth, sasl_server, tls_dialog

USERS = {
    "alice@example.test": "{PLAIN}wonderland",
    "bob@example.test": "{SHA512-CRYPT}" + "$6$rounds=5000$saltsaltsaltsalt$"
    "4U8BIEbnGL/ABN/LLS0xnDXhUaDbxDjz04zcUTNK6XxmZVcrT6spTbQUz0DDH.AtkAyl/q3y4xw.NrHm/mEBZ1",
}
# Dovecot answers a failure at once (its auth_failure_delay would add 2 s
# to smtpkit's own delay, which is what the tests measure).
FAST = "auth_failure_delay = 0\n"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def test_good_bad_unknown_and_the_delay(tmp_path, server):
    with PrivateDovecot(tmp_path, users=USERS, extra=FAST) as dv:
        srv = sasl_server(server, tmp_path, dovecot_auth=dv.auth_socket,
                          limits={"auth_failure_delay_ms": 700})
        srv.wait_log(r"event=dovecot-auth-ready socket=\S+ mechs=PLAIN,LOGIN")
        d = tls_dialog(srv)
        assert auth_line(d.plain_caps) is None  # AUTH only after TLS
        assert auth_line(d.caps) == ["PLAIN", "LOGIN"]
        t0 = time.monotonic()
        code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "wonderland"))
        assert code == 235, lines
        assert time.monotonic() - t0 < 0.7
        d.cmd("QUIT")

        d = tls_dialog(srv)
        t0 = time.monotonic()
        code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "wonderlan"))
        assert code == 535 and lines[0].startswith("535 5.7.8"), lines
        assert time.monotonic() - t0 >= 0.65
        code, lines = d.cmd("AUTH PLAIN " + plain_auth("nobody@example.test", "wonderland"))
        assert code == 535, lines
        # LOGIN from the client, passed on to Dovecot.
        code, _ = d.cmd("AUTH LOGIN")
        assert code == 334
        code, _ = d.cmd(b64("bob@example.test"))
        assert code == 334
        code, lines = d.cmd(b64("builder"))
        assert code == 535, lines
        d.cmd("QUIT")
        srv.wait_log(r"event=auth-failed conn=\d+ peer=127.0.0.1 user=nobody@example.test "
                     r"why=bad-credentials")

        # swaks, an independent client, over STARTTLS with AUTH LOGIN.
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{srv.port}", "--tls",
                            "--auth", "LOGIN", "--auth-user", "alice@example.test",
                            "--auth-password", "wonderland", "--from", "alice@example.test",
                            "--to", "bob@example.test", "--quit-after", "AUTH"],
                           capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0 and "<~  235 " in out, out + r.stderr.decode(errors="replace")


def test_per_connection_limit_and_address_budget(tmp_path, server):
    with PrivateDovecot(tmp_path, users=USERS, extra=FAST) as dv:
        srv = sasl_server(server, tmp_path, dovecot_auth=dv.auth_socket,
                          limits={"auth_failure_delay_ms": 100, "auth_failures_per_connection": 2,
                                  "auth_failures": 3, "auth_failure_window": 3600})
        d = tls_dialog(srv)
        assert d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "x1"))[0] == 535
        code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "x2"))
        assert code == 535, lines
        code, lines = d.reply()
        assert code == 421 and lines[0].startswith("421 4.7.0"), lines
        d = tls_dialog(srv)
        assert d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "x3"))[0] == 535
        # The address is over its budget: not even asked, even with the
        # right password (454, as with passwd_file).
        code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "wonderland"))
        assert code == 454, lines
        assert srv.log().count("why=address-blocked") == 1


def test_config_refuses_both_backends(tmp_path, server, smtpkit_bin):
    srv = sasl_server(server, tmp_path, dovecot_auth="/run/nothing/auth-client",
                      extra=f'passwd_file = "{tmp_path / "p"}";', start=False)
    r = subprocess.run([smtpkit_bin, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"passwd_file and dovecot_auth both set" in r.stderr


def test_mechanisms_follow_dovecot(tmp_path, server):
    with PrivateDovecot(tmp_path, users=USERS,
                        extra=FAST + "auth_mechanisms = login\n") as dv:
        srv = sasl_server(server, tmp_path, dovecot_auth=dv.auth_socket)
        srv.wait_log(r"event=dovecot-auth-ready socket=\S+ mechs=LOGIN")
        d = tls_dialog(srv)
        assert auth_line(d.caps) == ["LOGIN"]
        code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "wonderland"))
        assert code == 504, lines
        # Dovecot's LOGIN steps (Username:, Password:) answered for the client.
        assert d.cmd("AUTH LOGIN " + b64("alice@example.test"))[0] == 334
        code, lines = d.cmd(b64("wonderland"))
        assert code == 235, lines


def test_dovecot_stopped_is_454_never_an_accept(tmp_path, server, smtpkit_bin):
    dv = PrivateDovecot(tmp_path, users=USERS, extra=FAST)
    # Never there: the server starts anyway and answers 454.
    srv = sasl_server(server, tmp_path, dovecot_auth=dv.auth_socket)
    r = subprocess.run([smtpkit_bin, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"AUTH: checked by Dovecot at {dv.auth_socket}".encode() in r.stdout
    assert b"warning: dovecot_auth" in r.stderr and b"No such file" in r.stderr
    d = tls_dialog(srv)
    assert auth_line(d.caps) == ["PLAIN", "LOGIN"]
    code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "wonderland"))
    assert code == 454 and lines[0].startswith("454 4.7.0"), lines
    d.cmd("QUIT")
    dv.start()
    try:
        deadline = time.monotonic() + 20
        while True:  # the client reconnects on its own, or at the next attempt
            d = tls_dialog(srv)
            code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "wonderland"))
            d.cmd("QUIT")
            if code == 235 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert code == 235, lines
        d = tls_dialog(srv)
        dv.stop()
        srv.wait_log(r"event=dovecot-auth-lost socket=\S+")
        for password in ("wonderland", "wrong"):
            code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", password))
            assert code == 454 and lines[0].startswith("454 4.7.0"), lines
        assert "event=auth-failed" in srv.log() and "why=dovecot-unavailable" in srv.log()
    finally:
        dv.stop()


def test_tls_is_reported_to_dovecot_as_secured(tmp_path, server):
    """Dovecot's default disable_plaintext_auth = yes refuses PLAIN and
    LOGIN unless the client connection is secured: smtpkit says `secured`
    for a connection under TLS, so the login works, and Dovecot's log
    shows the client's address, not smtpkit's socket."""
    with PrivateDovecot(tmp_path, users=USERS,
                        extra=FAST + "disable_plaintext_auth = yes\nauth_verbose = yes\n") as dv:
        srv = sasl_server(server, tmp_path, dovecot_auth=dv.auth_socket)
        d = tls_dialog(srv)
        code, lines = d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "wonderland"))
        assert code == 235, (lines, dv.log()[-1500:])
        d.cmd("QUIT")
        d = tls_dialog(srv)
        assert d.cmd("AUTH PLAIN " + plain_auth("alice@example.test", "nope"))[0] == 535
        d.cmd("QUIT")
        want = "passwd-file(alice@example.test,127.0.0.1): Password mismatch"
        deadline = time.monotonic() + 10
        while want not in dv.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert want in dv.log(), dv.log()[-1500:]
