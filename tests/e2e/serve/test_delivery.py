"""Delivery through the real server with real clients (smtplib, curl, swaks):
messages land byte-exact in the right Maildir new/ with trace headers
prepended; recipients are checked against the tables (RFC 5321 4.5.1
postmaster, 550 5.1.1 unknown users, 550 5.7.1 no relaying, 452 4.5.3 too
many recipients, 552 5.3.4 too big)."""

import shutil
import smtplib
import subprocess

import pytest

from serve_helpers import assert_delivered, rfc822, split_trace

MSG = (b"From: Carol <carol@remote.test>\r\n"
       b"To: Alice <alice@example.test>\r\n"
       b"Subject: delivery test\r\n"
       b"\r\n"
       b"Hello Alice,\r\n"
       b"this is a test.\r\n")


def test_smtplib_delivers_byte_exact(server):
    srv = server()
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        refused = s.sendmail("carol@remote.test", ["alice@example.test"], MSG)
        assert refused == {}
    msgs = srv.messages("alice")
    assert len(msgs) == 1
    assert_delivered(msgs[0], MSG, "carol@remote.test")
    assert srv.messages("bob") == []
    # nothing left behind in tmp/ or the spool
    assert srv.files("alice", "tmp") == []
    assert list((srv.mail_root / ".spool").iterdir()) == []
    # one transaction line in the log with id, sender, recipient, size, reply
    line = srv.wait_log(r"event=message conn=\d+ peer=127\.0\.0\.1 id=\S+ from=<carol@remote.test> "
                        r"nrcpts=1 rcpts=<alice@example.test> size=%d result=250\n" % len(MSG))
    assert line
    assert srv.stop() == 0


def test_one_copy_per_mailbox_and_aliases(server):
    srv = server(aliases={"postmaster@example.test": ["alice@example.test"],
                          "team@example.test": ["alice@example.test", "bob@example.test"]})
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        refused = s.sendmail("carol@remote.test",
                             ["alice@example.test", "team@example.test", "BOB@EXAMPLE.TEST"],
                             MSG)
        assert refused == {}
    # alice is named twice (directly and via team), bob twice: one copy each
    assert len(srv.messages("alice")) == 1
    assert len(srv.messages("bob")) == 1
    for name in ("alice", "bob"):
        _, rest, _ = split_trace(srv.messages(name)[0])
        assert rest == MSG


def test_postmaster_always_accepted(server):
    srv = server(aliases={})  # no postmaster alias: the first mailbox (alice) gets it
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("")[0] == 250  # null reverse-path, as bounces use
        for rcpt in ("postmaster", "PostMaster", "postmaster@example.test",
                     "POSTMASTER@Example.Test"):
            code, msg = s.rcpt(rcpt)
            assert code == 250, (rcpt, msg)
        code, _ = s.data(MSG)
        assert code == 250
    msgs = srv.messages("alice")
    assert len(msgs) == 1
    assert_delivered(msgs[0], MSG, "")


def test_unknown_user_550_511(server):
    srv = server()
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("carol@remote.test")
        code, msg = s.rcpt("nobody@example.test")
        assert code == 550 and msg.startswith(b"5.1.1"), msg
        # the transaction goes on with a valid recipient
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.data(MSG)[0] == 250
    assert len(srv.messages("bob")) == 1
    assert srv.messages("alice") == []


def test_relay_denied_550_571(server):
    srv = server()
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("alice@example.test")
        for rcpt in ("someone@remote.test", "alice@example.test.remote.test",
                     "alice@[127.0.0.1]"):
            code, msg = s.rcpt(rcpt)
            assert code == 550 and msg.startswith(b"5.7.1"), (rcpt, code, msg)
        code, _ = s.docmd("DATA")
        assert code >= 500  # no valid recipient: no message
    assert srv.messages("alice") == [] and srv.messages("bob") == []


def test_trusted_network_relays_into_relay_queue(server, tmp_path):
    queue = tmp_path / "mail" / "queue"
    srv = server(extra=f'trusted_networks = [ "127.0.0.0/8" ];\nrelay_queue = "{queue}";\n'
                       "delivery = { enabled = false; };\n")  # the queue as stored
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.sendmail("alice@example.test", ["friend@remote.test"], MSG) == {}
    # the outbound queue: the message file and its envelope record
    files = sorted((queue / "msg").iterdir())
    assert len(files) == 1
    _, rest, _ = split_trace(rfc822(files[0].read_bytes()))
    assert rest == MSG
    env = (queue / "env" / files[0].name).read_text()
    assert "\nrcpt friend@remote.test - - pending 0 " in env, env
    srv.wait_log(r"event=message .*rcpts=<friend@remote.test> size=\d+ result=250\n")


def test_too_many_recipients_452_453(server):
    srv = server(limits={"recipients": 100})
    with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("carol@remote.test")
        for i in range(100):
            code, msg = s.rcpt("alice@example.test")
            assert code == 250, (i, msg)
        code, msg = s.rcpt("bob@example.test")
        assert code == 452 and msg.startswith(b"4.5.3"), msg
        assert s.data(MSG)[0] == 250  # the first 100 still get the message
    assert len(srv.messages("alice")) == 1
    assert srv.messages("bob") == []


def test_oversize_message_552_534(server):
    srv = server(limits={"message_size": 100000})
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 120  # ~120 kB
    # declared size too big: refused at MAIL (RFC 1870)
    with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.has_extn("size") and int(s.esmtp_features["size"]) == 100000
        code, msg = s.mail("carol@remote.test", [f"SIZE={len(big)}"])
        assert code == 552 and msg.startswith(b"5.3.4"), msg
    # no SIZE declared: refused after the data
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(big + b".\r\n")
        code, lines = r.reply()
        assert code == 552 and lines[-1][4:9] == "5.3.4", lines
        assert r.cmd("QUIT")[0] == 221
    assert srv.messages("alice") == []
    assert srv.files("alice", "tmp") == []


def test_default_limits_10mib_accepted(server):
    srv = server()
    body = b"Subject: nine MiB\r\n\r\n" + (b"y" * 1022 + b"\r\n") * (9 * 1024)
    with smtplib.SMTP(srv.host, srv.port, timeout=60) as s:
        s.ehlo("client.test")
        assert int(s.esmtp_features["size"]) == 10485760
        assert s.sendmail("carol@remote.test", ["bob@example.test"], body) == {}
    _, rest, _ = split_trace(srv.messages("bob")[0])
    assert rest == body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_client(server, tmp_path):
    srv = server()
    msg = tmp_path / "msg.eml"
    content = (b"From: curl@remote.test\r\nTo: bob@example.test\r\nSubject: via curl\r\n\r\n"
               b"sent with curl\r\n.leading dot line\r\n")
    msg.write_bytes(content)
    r = subprocess.run(["curl", "-sS", "--max-time", "20", f"smtp://{srv.host}:{srv.port}",
                        "--mail-from", "curl@remote.test", "--mail-rcpt", "bob@example.test",
                        "--mail-rcpt", "alice@example.test", "--upload-file", str(msg)],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for name in ("alice", "bob"):
        msgs = srv.messages(name)
        assert len(msgs) == 1
        assert_delivered(msgs[0], content, "curl@remote.test")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_unknown_recipient_fails(server, tmp_path):
    srv = server()
    msg = tmp_path / "msg.eml"
    msg.write_bytes(b"Subject: x\r\n\r\nx\r\n")
    r = subprocess.run(["curl", "-sS", "--max-time", "20", f"smtp://{srv.host}:{srv.port}",
                        "--mail-from", "curl@remote.test", "--mail-rcpt", "ghost@example.test",
                        "--upload-file", str(msg)], capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"550" in r.stderr
    assert srv.messages("alice") == [] and srv.messages("bob") == []


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_client(server):
    srv = server()
    r = subprocess.run(["swaks", "--server", srv.host, "--port", str(srv.port),
                        "--from", "swaks@remote.test", "--to", "alice@example.test",
                        "--helo", "swaks.test", "--header", "Subject: via swaks",
                        "--body", "swaks body line", "--timeout", "20"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    msgs = srv.messages("alice")
    assert len(msgs) == 1
    trace, rest, _ = split_trace(msgs[0])
    assert trace.startswith(b"Return-Path: <swaks@remote.test>\r\n")
    assert b"\r\nSubject: via swaks\r\n" in b"\r\n" + rest
    assert b"\r\n\r\nswaks body line\r\n" in rest
    # swaks reports the server's final 250 and the 221
    assert b"<-  250" in r.stdout and b"<-  221" in r.stdout


@pytest.mark.parametrize("notify", [False, True], ids=["250", "251-forward-notify"])
def test_alias_to_other_domain_goes_to_relay_queue(server, tmp_path, notify):
    queue = tmp_path / "mail" / "queue"
    srv = server(aliases={"postmaster@example.test": ["alice@example.test"],
                          "fwd@example.test": ["bob@example.test", "far@remote.test"]},
                 extra=f'relay_queue = "{queue}";\ndelivery = {{ enabled = false; }};\n'
                       + ("forward_notify = true;\n" if notify else ""))
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("carol@remote.test")
        code, msg = s.rcpt("fwd@example.test")
        if notify:
            assert code == 251 and b"far@remote.test" in msg, msg
        else:
            assert code == 250, msg
        # relaying itself is still refused: this client is not trusted
        assert s.rcpt("far@remote.test")[0] == 550
        assert s.data(MSG)[0] == 250
    assert len(srv.messages("bob")) == 1
    assert len(list((queue / "msg").iterdir())) == 1
    env = next((queue / "env").iterdir()).read_text()
    assert "\nrcpt far@remote.test " in env and "bob@" not in env, env


def test_catch_all(server):
    srv = server(extra='catch_all = ( { domain = "example.test"; to = "bob@example.test"; } );\n')
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["whoever@example.test", "Alice@Example.Test"],
                          MSG) == {}
    assert len(srv.messages("bob")) == 1
    assert len(srv.messages("alice")) == 1
