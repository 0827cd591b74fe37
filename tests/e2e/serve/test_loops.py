"""Mail loops (RFC 5321 6.3): a message whose header section carries more
Received fields than limits.received_headers (default 50, Postfix's
hopcount_limit) is read to its end and refused with 554 5.4.6; nothing is
stored. Received lines in the body never count."""

import smtplib
import subprocess


def hops(n):
    return b"".join(b"Received: from hop%d.example by hop%d.example; "
                    b"Tue, 1 Dec 2026 10:00:00 +0000\r\n" % (i, i + 1) for i in range(n))


def message(n, body=b"hello\r\n"):
    return hops(n) + b"From: carol@remote.test\r\nSubject: hops\r\n\r\n" + body


def test_more_than_fifty_received_is_refused(server):
    srv = server()
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        try:
            s.sendmail("carol@remote.test", ["alice@example.test"], message(60))
            raise AssertionError("a message with 60 Received fields was accepted")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 554
            assert e.smtp_error.startswith(b"5.4.6 ")
            assert b"loop" in e.smtp_error
        # the session goes on: 50 hops, and any number of Received lines in
        # the body, are accepted
        body = hops(100)
        refused = s.sendmail("carol@remote.test", ["alice@example.test"], message(50, body))
        assert refused == {}
    msgs = srv.messages("alice")
    assert len(msgs) == 1
    # our own trace headers, then the message byte for byte
    assert msgs[0].endswith(b"\r\n" + message(50, body))
    assert msgs[0].count(b"\r\nReceived: from hop") == 50 + 100
    srv.wait_log(r"event=message .* result=554 reason=loop")
    assert srv.stop() == 0


def test_limit_is_configurable(server):
    srv = server(limits={"received_headers": 3})
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.sendmail("carol@remote.test", ["alice@example.test"], message(3)) == {}
        try:
            s.sendmail("carol@remote.test", ["alice@example.test"], message(4))
            raise AssertionError("a 4th Received field was accepted with a limit of 3")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 554
            assert e.smtp_error.startswith(b"5.4.6 ")
    assert len(srv.messages("alice")) == 1
    assert srv.stop() == 0


def test_bdat_counts_across_chunks(server):
    srv = server(limits={"received_headers": 2})
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        c1 = b"Received: a\r\nReceived: b\r\nRecei"
        c2 = b"ved: c\r\n\r\nbody\r\n"
        r.send(b"BDAT %d\r\n%s" % (len(c1), c1))
        assert r.reply()[0] == 250
        r.send(b"BDAT %d LAST\r\n%s" % (len(c2), c2))
        code, lines = r.reply()
        assert code == 554
        assert lines[0].startswith("554 5.4.6 ")
    assert srv.messages("alice") == []
    assert srv.stop() == 0


def test_bad_setting_is_refused(server, smtpkit_bin):
    srv = server(start=False, limits={"received_headers": 0})
    r = subprocess.run([smtpkit_bin, "serve", "-c", str(srv.conf_path), "--check"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "received_headers" in r.stderr
