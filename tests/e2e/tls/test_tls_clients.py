"""Authenticated submission with real clients: Python's smtplib (STARTTLS
and implicit TLS, RFC 3207 / RFC 8314), curl and swaks (AUTH PLAIN and
LOGIN, RFC 4954), checking the certificate against the one the server
generated, and what lands in the mailbox: the Received header names
ESMTPSA with the TLS version and cipher (RFC 3848)."""

import re
import smtplib
import subprocess

MSG = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello over TLS\r\n"
RECEIVED_TLS = re.compile(rb"with (ESMTPSA?) \((TLSv1\.[23]) ([A-Z0-9_-]+)\)")


def received_of(stored):
    header = stored.split(b"\r\n\r\n", 1)[0]
    return re.sub(rb"\r\n[ \t]+", b" ", header)


def test_smtplib_starttls_login_submission(tls_server):
    srv = tls_server()
    with smtplib.SMTP(srv.host, srv.sub_port, timeout=10) as s:
        s.ehlo("client.example")
        assert not s.has_extn("auth")  # RFC 4954 + auth_requires_tls: not before TLS
        assert s.has_extn("starttls")
        s.starttls(context=srv.ssl_context())  # verifies the generated certificate
        s.ehlo("client.example")
        assert s.has_extn("auth") and "PLAIN" in s.esmtp_features["auth"]
        assert not s.has_extn("starttls")
        s.login("alice@example.test", "wonderland")
        refused = s.sendmail("alice@example.test", ["bob@example.test"], MSG)
        assert refused == {}
    (stored,) = srv.messages("bob")
    hdr = received_of(stored)
    m = RECEIVED_TLS.search(hdr)
    assert m and m.group(1) == b"ESMTPSA", hdr
    assert stored.endswith(MSG)
    srv.wait_log(r"event=auth conn=\d+ peer=127\.0\.0\.1 mech=PLAIN user=alice@example\.test result=235")


def test_smtp_ssl_implicit_tls(tls_server):
    srv = tls_server()
    with smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=srv.ssl_context(), timeout=10) as s:
        code, banner = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls")  # already encrypted
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        s.login("bob", "builder")  # the SHA-512-crypt account, LOGIN or PLAIN
        s.sendmail("bob@example.test", ["alice@example.test"], MSG)
    (stored,) = srv.messages("alice")
    m = RECEIVED_TLS.search(received_of(stored))
    assert m and m.group(1) == b"ESMTPSA"


def test_curl_starttls_and_smtps(tls_server, tmp_path):
    srv = tls_server()
    body = tmp_path / "msg.eml"
    body.write_bytes(MSG)
    for url in (f"smtp://127.0.0.1:{srv.sub_port}", f"smtps://127.0.0.1:{srv.smtps_port}"):
        r = subprocess.run(["curl", "--silent", "--show-error", "--ssl-reqd", "--cacert",
                            str(srv.cert), "--url", url, "--user", "alice@example.test:wonderland",
                            "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                            "--upload-file", str(body), "--max-time", "20"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    assert len(srv.messages("bob")) == 2
    # a wrong password: curl reports the failed login (535) and sends nothing
    r = subprocess.run(["curl", "--silent", "--ssl-reqd", "--cacert", str(srv.cert), "--url",
                        f"smtp://127.0.0.1:{srv.sub_port}", "--user", "alice@example.test:nope",
                        "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                        "--upload-file", str(body), "--max-time", "20"],
                       capture_output=True, timeout=30)
    assert r.returncode == 67  # CURLE_LOGIN_DENIED
    assert len(srv.messages("bob")) == 2


def swaks(*args):
    r = subprocess.run(["swaks", "--timeout", "20", "--from", "alice@example.test", *args],
                       capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def test_swaks_plain_and_login(tls_server):
    srv = tls_server()
    for mech in ("PLAIN", "LOGIN"):
        code, out = swaks("--server", f"127.0.0.1:{srv.sub_port}", "--tls", "--auth", mech,
                          "--auth-user", "alice@example.test", "--auth-password", "wonderland",
                          "--to", "bob@example.test")
        assert code == 0, out
        assert "235 2.7.0 Authentication successful" in out
        assert re.search(r"<~  250 2\.0\.0 Ok: queued as", out), out
    code, out = swaks("--server", f"127.0.0.1:{srv.smtps_port}", "--tlsc", "--auth", "LOGIN",
                      "--auth-user", "bob", "--auth-password", "builder", "--to",
                      "bob@example.test")
    assert code == 0, out
    assert "TLS started" in out
    assert len(srv.messages("bob")) == 3
    # the wrong password, both mechanisms: 535 5.7.8 (RFC 4954 6)
    for mech in ("PLAIN", "LOGIN"):
        code, out = swaks("--server", f"127.0.0.1:{srv.sub_port}", "--tls", "--auth", mech,
                          "--auth-user", "alice@example.test", "--auth-password", "wrong",
                          "--to", "bob@example.test")
        assert code != 0
        assert "535 5.7.8" in out, out
    assert len(srv.messages("bob")) == 3


def test_relaying_needs_authentication(tls_server):
    srv = tls_server()
    # MX listener, no AUTH: mail to another domain is relaying: refused
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.example")
        s.starttls(context=srv.ssl_context())
        s.ehlo("client.example")
        s.mail("alice@example.test")
        code, msg = s.rcpt("someone@elsewhere.test")
        assert code == 550 and msg.startswith(b"5.7.1"), msg
        code, _ = s.rcpt("bob@example.test")  # local mail is fine
        assert code == 250
    # authenticated (on the MX listener after STARTTLS, and on submission):
    # relaying allowed, the message goes to the relay queue
    for port in (srv.port, srv.sub_port):
        with smtplib.SMTP(srv.host, port, timeout=10) as s:
            s.ehlo("client.example")
            s.starttls(context=srv.ssl_context())
            s.ehlo("client.example")
            s.login("alice@example.test", "wonderland")
            assert s.sendmail("alice@example.test", ["someone@elsewhere.test"], MSG) == {}
    # the outbound queue: one message file and one envelope record each
    queued = sorted((srv.tmp_path / "queue" / "msg").iterdir())
    assert len(queued) == 2
    assert sorted(p.name for p in (srv.tmp_path / "queue" / "env").iterdir()) == \
        [p.name for p in queued]
    # the queue's message file has LF line ends, as the Maildir copies
    queued_msg = queued[0].read_bytes()
    assert b"\r\n" not in queued_msg
    assert RECEIVED_TLS.search(received_of(queued_msg.replace(b"\n", b"\r\n")))
