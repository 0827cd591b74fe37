"""Milters on a listener (`milters = [ ... ]`), against a milter speaking
the real protocol (scripted_milter.py): what reaches the milter (macros,
CONNECT, HELO, MAIL, RCPT, headers, body, end of message), and what each
of its verdicts does to the SMTP dialogue and to the stored message:
REPLYCODE passed through when it is valid for the command (else the
default 550 5.7.1), TEMPFAIL, DISCARD (250, nothing stored), header
changes, body replacement, quarantine (stored with a mark). A milter
that is down, answers garbage or closes mid-message gets its default
action (tempfail or accept) with a log line, and the server keeps
serving."""

import smtplib
import socket
import threading
import time

import pytest

from scripted_milter import ScriptedMilter

FROM = "carol@remote.test"


def msg(subject, extra=b"", body=b"hello milter\r\n"):
    return b"Subject: " + subject.encode() + b"\r\n" + extra + b"From: carol@remote.test\r\n\r\n" + body


@pytest.fixture
def milter():
    m = ScriptedMilter()
    yield m
    m.stop()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


MAILBOXES = {f"{n}@example.test": n for n in ("alice", "bob", "refuse-me", "badcode-me", "ctrl-me")}


def serve(server, specs, extra=""):
    quoted = ", ".join(s if s.startswith("{") else f'"{s}"' for s in specs)
    # a list of strings is an array [ ... ]; with a group in it, a list ( ... )
    lst = f"( {quoted} )" if any(s.startswith("{") for s in specs) else f"[ {quoted} ]"
    return server(listener=f"milters = {lst};", extra=extra, mailboxes=MAILBOXES)


def test_events_reach_the_milter(server, milter):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        s.sendmail(FROM, ["alice@example.test"], msg("plain", body=b"line one\r\nline two\r\n"))
    assert len(srv.messages("alice")) == 1
    srv.wait_log(r"event=disconnect")
    version = milter.seen("O")[0]
    assert version[1] == 6
    assert milter.seen("C")[0][1] == "[127.0.0.1]"
    assert milter.seen("H")[0][1] == "client.example"
    assert milter.seen("M")[0][1] == f"<{FROM}>"
    assert milter.seen("R")[0][1] == "<alice@example.test>"
    names = [e[1] for e in milter.seen("L")]
    # our own Received field comes first, as Postfix passes its own; the
    # Return-Path field belongs to the delivery and is not shown
    assert names[0] == "Received" and "Return-Path" not in names
    assert "Subject" in names and "From" in names
    assert b"".join(e[1] for e in milter.seen("B")) == b"line one\r\nline two\r\n"
    assert milter.seen("N") and milter.seen("E")
    macros = {}
    for e in milter.seen("D"):
        macros.update(e[2])
    assert macros["j"] and macros["{daemon_name}"] == "smtpkit"
    assert macros["{rcpt_addr}"] == "alice@example.test"
    # the queue id macro is the message id of the 250 and the Received field
    stored = srv.messages("alice")[0].decode()
    assert macros["i"] in stored
    assert srv.stop() == 0


def test_rcpt_replycode_passed_through(server, milter):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        assert s.mail(FROM)[0] == 250
        code, text = s.rcpt("refuse-me@example.test")
        assert (code, text) == (550, b"5.7.1 Recipient refused by scripted milter")
        # a REPLYCODE whose enhanced code is of another class is not passed on
        code, text = s.rcpt("badcode-me@example.test")
        assert code == 550 and text.startswith(b"5.7.1 ") and b"Mismatched" not in text
        # control octets in the text never reach the client
        code, text = s.rcpt("ctrl-me@example.test")
        assert code == 550 and b"\x01" not in text and b"bad?text" in text
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.data(msg("after refusals"))[0] == 250
    stored = srv.messages("alice")
    assert len(stored) == 1
    srv.wait_log(r"event=reject .*cmd=RCPT code=550 enh=5.7.1 .*to=<refuse-me@example.test>.*text=\"Recipient refused by scripted milter\"")
    assert srv.stop() == 0


def test_mail_tempfail(server, milter):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        code, text = s.mail("tempfail@remote.test")
        assert code == 451 and text.startswith(b"4.7.1")
        # no transaction was opened: RCPT needs MAIL
        assert s.rcpt("alice@example.test")[0] == 503
        assert s.mail(FROM)[0] == 250
    assert milter.seen("A"), "the aborted message was not closed with SMFIC_ABORT"
    assert srv.stop() == 0


@pytest.mark.parametrize("subject,code,enh", [("reject", 554, b"5.7.1"), ("tempfail", 451, b"4.7.1")])
def test_end_of_message_refusal(server, milter, subject, code, enh):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        s.mail(FROM)
        s.rcpt("alice@example.test")
        c, text = s.data(msg(subject))
        assert c == code and text.startswith(enh)
        if subject == "reject":
            assert text == b"5.7.1 Spam detected by scripted milter"
        # the session goes on: the next message is accepted
        s.mail(FROM)
        s.rcpt("alice@example.test")
        assert s.data(msg("next"))[0] == 250
    assert len(srv.messages("alice")) == 1
    srv.wait_log(rf"event=message .*result={code} reason=milter")
    assert srv.stop() == 0


def test_discard(server, milter):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        s.mail(FROM)
        s.rcpt("alice@example.test")
        code, text = s.data(msg("discard"))
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    srv.wait_log(r"event=message .*result=250 reason=milter-discard")
    assert srv.messages("alice") == []
    assert srv.stop() == 0


def test_header_changes(server, milter):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.sendmail(FROM, ["alice@example.test"],
                   msg("headers", extra=b"X-Remove-Me: secret\r\n", body=b"body kept\r\n"))
    (stored,) = srv.messages("alice")
    head, _, body = stored.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: ")  # stays on top
    assert lines[1] == b"X-Inserted: at the top"
    assert lines[2].startswith(b"Received: ")
    assert b"Subject: [tagged] headers" in lines
    assert b"Subject: headers" not in lines
    assert not any(line.startswith(b"X-Remove-Me") for line in lines)
    assert lines[-1] == b"X-Added: added by milter"
    assert body == b"body kept\r\n"
    srv.wait_log(r"event=milter-changes .*added=2 changed=1 deleted=1 body=kept")
    assert srv.stop() == 0


def test_body_replacement(server, milter):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.sendmail(FROM, ["alice@example.test"], msg("replace", body=b"original body\r\n"))
    (stored,) = srv.messages("alice")
    head, _, body = stored.partition(b"\r\n\r\n")
    assert b"Subject: replace" in head
    assert body == b"replaced body line 1\r\nreplaced body line 2\r\n"
    assert srv.stop() == 0


def test_quarantine_marks_and_stores(server, milter):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.sendmail(FROM, ["alice@example.test"], msg("quarantine"))
    (stored,) = srv.messages("alice")
    assert b"\r\nX-Smtpkit-Quarantine: held by test\r\n" in stored
    srv.wait_log(r'event=milter-quarantine .*reason="held by test"')
    assert srv.stop() == 0


@pytest.mark.parametrize("default,expect", [("tempfail", 451), ("accept", 250)])
def test_milter_down(server, default, expect):
    spec = f"inet:127.0.0.1:{closed_port()}"
    srv = serve(server, [spec], extra=f'milter_default_action = "{default}";')
    with smtplib.SMTP(srv.host, srv.port) as s:
        assert s.ehlo("client.example")[0] == 250  # the greeting and EHLO go on
        code, text = s.mail(FROM)
        assert code == expect
        if expect == 451:
            assert text == b"4.7.1 Service unavailable - try again later"
        else:
            s.rcpt("alice@example.test")
            assert s.data(msg("unfiltered"))[0] == 250
    srv.wait_log(rf"event=milter-error .*milter={spec} step=connect .*default={default}")
    assert len(srv.messages("alice")) == (1 if expect == 250 else 0)
    assert srv.stop() == 0


def test_per_milter_default_action(server):
    down = f"inet:127.0.0.1:{closed_port()}"
    srv = serve(server, [f'{{ socket = "{down}"; default_action = "accept"; timeout = 5; }}'],
                extra='milter_default_action = "tempfail";')
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.sendmail(FROM, ["alice@example.test"], msg("accepted"))
    assert len(srv.messages("alice")) == 1
    assert srv.stop() == 0


@pytest.mark.parametrize("subject", ["garbage", "close"])
def test_broken_milter_mid_message(server, milter, subject):
    srv = serve(server, [milter.spec])
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        s.mail(FROM)
        s.rcpt("alice@example.test")
        code, text = s.data(msg(subject))
        assert (code, text) == (451, b"4.7.1 Service unavailable - try again later")
        # the failed milter stays failed for this connection: default tempfail
        assert s.mail(FROM)[0] == 451
    srv.wait_log(r"event=milter-error .*step=data ")
    # the server keeps serving: a new connection gets a new milter connection
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.sendmail(FROM, ["alice@example.test"], msg("fine"))
    assert len(srv.messages("alice")) == 1
    assert srv.stop() == 0


def test_bad_milter_socket_is_a_config_error(server, smtpkit_bin):
    import subprocess

    srv = server(listener='milters = [ "inet:localhost:notaport" ];', start=False)
    r = subprocess.run([smtpkit_bin, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "milter 'inet:localhost:notaport'" in r.stderr


def test_slow_milter_does_not_block_other_clients(server, milter):
    srv = serve(server, [milter.spec])
    result = {}

    def slow_client():
        with smtplib.SMTP(srv.host, srv.port) as s:
            result["slow"] = s.sendmail(FROM, ["alice@example.test"], msg("slow"))
            result["slow_done"] = time.monotonic()

    t = threading.Thread(target=slow_client)
    t.start()
    time.sleep(0.5)  # the slow client is now waiting for the milter's verdict
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.sendmail(FROM, ["bob@example.test"], msg("quick"))
    quick_done = time.monotonic()
    t.join(timeout=20)
    assert "slow_done" in result
    assert quick_done < result["slow_done"] - 0.5
    assert len(srv.messages("alice")) == 1 and len(srv.messages("bob")) == 1
    assert srv.stop() == 0


def test_milter_timeout_gets_default_action(server, milter):
    milter.slow = 4.0
    srv = serve(server, [f'{{ socket = "{milter.spec}"; timeout = 1; }}'])
    start = time.monotonic()
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        s.mail(FROM)
        s.rcpt("alice@example.test")
        code, text = s.data(msg("slow"))
        assert (code, text) == (451, b"4.7.1 Service unavailable - try again later")
    assert time.monotonic() - start < 3.5
    srv.wait_log(r'event=milter-error .*step=data error="timeout" default=tempfail')
    assert srv.messages("alice") == []
    assert srv.stop() == 0


def test_unix_socket_milter(server, tmp_path):
    path = tmp_path / "milter.sock"
    m = ScriptedMilter(unix_path=path)
    try:
        srv = serve(server, [m.spec])
        with smtplib.SMTP(srv.host, srv.port) as s:
            s.sendmail(FROM, ["alice@example.test"], msg("headers"))
        (stored,) = srv.messages("alice")
        assert b"\r\nX-Added: added by milter\r\n" in stored
        assert srv.stop() == 0
    finally:
        m.stop()


def test_milters_in_order_see_each_others_changes(server, milter):
    second = ScriptedMilter()
    try:
        srv = serve(server, [milter.spec, second.spec])
        with smtplib.SMTP(srv.host, srv.port) as s:
            s.sendmail(FROM, ["alice@example.test"], msg("headers"))
        subjects = [e[2] for e in second.seen("L") if e[1] == "Subject"]
        assert subjects == ["[tagged] headers"]
        assert [e[1] for e in second.seen("L")][0] == "X-Inserted"
        # a refusal by the first milter: the second is not asked
        with smtplib.SMTP(srv.host, srv.port) as s:
            s.ehlo("client.example")
            s.mail(FROM)
            s.rcpt("alice@example.test")
            assert s.data(msg("reject"))[0] == 554
        assert len(second.seen("E")) == 1
        assert srv.stop() == 0
    finally:
        second.stop()


def test_implicit_tls_listener_consults_its_milters(server, milter, tmp_path):
    """On an implicit-TLS listener the connect step runs after the
    handshake, then the greeting; STARTTLS keeps the milter connection."""
    import ssl

    from loopback_port import free_port

    smtps = free_port()
    listener = (f'starttls = true; milters = [ "{milter.spec}" ]; }},\n'
                f'  {{ address = "127.0.0.1"; port = {smtps}; implicit_tls = true; '
                f'milters = [ "{milter.spec}" ];')
    extra = "\n".join([f'tls_certificate = "{tmp_path / "cert.pem"}";',
                       f'tls_key = "{tmp_path / "key.pem"}";', "tls_generate_if_missing = true;"])
    srv = server(listener=listener, extra=extra, mailboxes=MAILBOXES)
    srv.wait_log(r"event=disconnect conn=1 ")  # the fixture's start-up probe
    before = len(milter.seen("C"))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP_SSL(srv.host, smtps, context=ctx) as s:
        s.sendmail(FROM, ["alice@example.test"], msg("headers"))
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.starttls(context=ctx)
        s.sendmail(FROM, ["alice@example.test"], msg("headers"))
    stored = srv.messages("alice")
    assert len(stored) == 2
    assert all(b"\r\nX-Added: added by milter\r\n" in m for m in stored)
    assert len(milter.seen("C")) == before + 2  # one milter connection per client connection
    assert srv.stop() == 0
