"""LMTP delivery (RFC 2033) to a private Dovecot: with `lmtp` set, mail for
the local mailboxes is handed to Dovecot's LMTP server before the 250, and
the SMTP client (smtplib) hears what LMTP said: 250 only when every
mailbox took the message, Dovecot's 5xx when it refused them all, a 4xx
(and nothing stored, nothing queued) when it is down; the retry then
succeeds. Read back over IMAP byte-exact, with Delivered-To; Sieve
applies; connections are reused within lmtp_connections."""

import re
import smtplib
import threading
import time

import pytest

from private_dovecot import PrivateDovecot

MSG = (b"From: Carol <carol@remote.test>\r\n"
       b"To: Alice <alice@example.test>\r\n"
       b"Subject: over lmtp\r\n"
       b"\r\n"
       b"Hello Alice,\r\n"
       b".a dot-stuffed line\r\n"
       b"\r\n"
       b"bye\r\n")

SIEVE = ('require ["fileinto", "mailbox"];\n'
         'if header :contains "Subject" "sorted" { fileinto :create "Sorted"; }\n')

USERS = {"alice@example.test": "{PLAIN}secret", "bob@example.test": "{PLAIN}secret"}
# carol is a mailbox for smtpkit, unknown to Dovecot's userdb
MAILBOXES = {"alice@example.test": "alice", "bob@example.test": "bob",
             "carol@example.test": "carol"}


def lmtp_server(server, dv, target=None, extra=""):
    target = target or f"127.0.0.1:{dv.lmtp_port}"
    return server(mail_root=dv.mail_root, mailboxes=MAILBOXES,
                  extra=f'lmtp = "{target}";\n{extra}')


def test_lmtp_tcp_byte_exact_delivered_to_and_sieve(server, tmp_path):
    with PrivateDovecot(tmp_path, users=USERS, sieve=SIEVE) as dv:
        srv = lmtp_server(server, dv)
        with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
            assert s.sendmail("carol@remote.test", ["alice@example.test"], MSG) == {}
            code, _ = s.noop()
            assert code == 250
            s.mail("carol@remote.test")
            s.rcpt("alice@example.test")
            code, reply = s.data(b"Subject: sorted\r\n\r\nfiled by sieve\r\n")
            assert code == 250 and b"queued as" in reply, reply
        inbox = dv.imap_messages("alice@example.test", "secret")
        assert len(inbox) == 1
        m = inbox[0]
        # Dovecot's trace fields, then smtpkit's Received, then exactly what was sent
        assert m.endswith(b"\r\n" + MSG)
        head = m[:-len(MSG)]
        assert b"Delivered-To: alice@example.test\r\n" in head
        assert head.count(b"Return-Path:") == 1 and head.startswith(b"Return-Path: <carol@remote.test>")
        assert b"by mx.example.test (smtpkit)" in head
        assert [x.endswith(b"\r\n\r\nfiled by sieve\r\n")
                for x in dv.imap_messages("alice@example.test", "secret", "Sorted")] == [True]
        # smtpkit stored nothing itself: every file in alice's Maildir is
        # Dovecot's (smtpkit's names start with its 20-character id), and
        # nothing is left in the spool
        ids = re.findall(rb"with ESMTP id ([0-9A-V]{20})", m)
        assert len(ids) == 1
        for sub in ("new", "cur"):
            d = dv.mail_root / "alice" / sub
            assert not d.exists() or not any(p.name.startswith(ids[0].decode()) for p in d.iterdir())
        assert list((dv.mail_root / ".spool").iterdir()) == []
        assert srv.stop() == 0


def test_lmtp_unix_socket_and_alias_to_two_mailboxes(server, tmp_path):
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        srv = server(mail_root=dv.mail_root, mailboxes=MAILBOXES,
                     aliases={"team@example.test": ["alice@example.test", "bob@example.test"]},
                     extra=f'lmtp = "unix:{dv.lmtp_socket}";')
        with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
            assert s.sendmail("carol@remote.test", ["team@example.test", "alice@example.test"],
                              MSG) == {}
        # alice named twice: one copy each
        assert [m.endswith(MSG) for m in dv.imap_messages("alice@example.test", "secret")] == [True]
        assert [m.endswith(MSG) for m in dv.imap_messages("bob@example.test", "secret")] == [True]
        assert srv.stop() == 0


def test_unknown_lmtp_user_gets_dovecots_5xx(server, tmp_path):
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        srv = lmtp_server(server, dv)
        with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("x@remote.test")
            assert s.rcpt("carol@example.test")[0] == 250  # smtpkit knows the mailbox
            code, reply = s.data(MSG)
            assert code == 550, reply  # Dovecot's refusal, passed on
            assert reply.startswith(b"5.1.1 "), reply
            # alice and carol: alice gets it, carol is refused: not every
            # mailbox took it, and the failure is permanent: 5xx
            s.mail("x@remote.test")
            s.rcpt("carol@example.test")
            s.rcpt("alice@example.test")
            code, reply = s.data(MSG)
            assert code == 550 and reply.startswith(b"5.1.1 "), reply
        assert len(dv.imap_messages("alice@example.test", "secret")) == 1
        srv.wait_log(r"event=message .* result=550 reason=refused")
        # the log says which mailbox Dovecot refused, and how
        errs = re.findall(r"event=store-error conn=\d+ [^\n]*", srv.log())
        assert len(errs) == 2, errs
        for e in errs:
            assert " result=refused step=lmtp " in e and " errno=0 " in e, e
            assert 'detail="<carol@example.test> 550 5.1.1 ' in e, e
        assert srv.stop() == 0


@pytest.mark.parametrize("how", ["stopped", "no-socket"])
def test_lmtp_down_4xx_nothing_lost_then_retry(server, tmp_path, how):
    dv = PrivateDovecot(tmp_path, users=USERS)
    target = f"unix:{tmp_path}/no/such/lmtp" if how == "no-socket" else None
    queue = tmp_path / "queue"
    srv = lmtp_server(server, dv, target=target or f"127.0.0.1:{dv.lmtp_port}",
                      extra=f'relay_queue = "{queue}";\n'
                            'delivery = { enabled = false; };\n'  # the queue as stored
                            'trusted_networks = [ "127.0.0.0/8" ];')
    if how == "stopped":
        # Dovecot was up (a pooled connection is idle), then stops
        with dv:
            with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
                assert s.sendmail("carol@remote.test", ["alice@example.test"], MSG) == {}
    # Dovecot not running (or no socket): 4xx, nothing stored, nothing queued
    with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
        s.ehlo("client.test")
        for rcpts in (["alice@example.test"], ["alice@example.test", "someone@remote.test"]):
            s.mail("carol@remote.test")
            for r in rcpts:
                assert s.rcpt(r)[0] == 250
            code, reply = s.data(MSG)
            assert code == 451 and reply.startswith(b"4.3.0 "), (code, reply)
            s.rset()
    assert list((queue / "msg").iterdir()) == [] and list((queue / "env").iterdir()) == []
    assert list((dv.mail_root / ".spool").iterdir()) == []
    # one store-error line per failed message: the lmtp step, the server,
    # the errno when a system call failed, and what happened in words
    errs = re.findall(r"event=store-error conn=\d+ [^\n]*", srv.log())
    assert len(errs) == 2, errs
    for e in errs:
        assert " result=deferred step=lmtp " in e, e
        assert 'detail="LMTP server' in e, e
        if how == "no-socket":
            assert f" path=unix:{tmp_path}/no/such/lmtp errno=2 " \
                   'error="No such file or directory" ' in e, e
    if how == "no-socket":
        srv.stop()
        srv = lmtp_server(server, dv, target=f"unix:{dv.lmtp_socket}")
    with dv:
        # the sender's retry goes through
        with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
            assert s.sendmail("carol@remote.test", ["alice@example.test"], MSG) == {}
        want = 2 if how == "stopped" else 1
        assert [m.endswith(MSG) for m in dv.imap_messages("alice@example.test", "secret")] == \
            [True] * want
    assert srv.stop() == 0


def test_concurrent_clients_share_the_pool_within_the_limit(server, tmp_path):
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        srv = lmtp_server(server, dv, extra="lmtp_connections = 3;")
        errors = []

        def client(k):
            try:
                with smtplib.SMTP(srv.host, srv.port, timeout=60) as s:
                    for i in range(4):
                        body = MSG + b"client %d message %d\r\n" % (k, i)
                        assert s.sendmail("carol@remote.test", ["bob@example.test"], body) == {}
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert time.monotonic() - t0 < 120
        inbox = dv.imap_messages("bob@example.test", "secret")
        assert len(inbox) == 32
        assert sorted(re.search(rb"client (\d) message (\d)", m).groups() for m in inbox) == \
            sorted((b"%d" % k, b"%d" % i) for k in range(8) for i in range(4))
        assert srv.stop() == 0
        # smtpkit's own count: at most 3 open at once, reused
        m = re.search(r"event=stop .* lmtp_connections=(\d+) lmtp_peak=(\d+)", srv.log())
        assert m, srv.log()[-2000:]
        assert 1 <= int(m.group(2)) <= 3 and int(m.group(1)) <= 3
        # Dovecot's log: one line per LMTP connection closed; smtpkit's end
        # after RSET (state READY); the fixture's start-up probe never got
        # past the greeting. 32 messages over at most 3 connections.
        states = re.findall(r"lmtp\(\d+\): Info: Disconnect from 127\.0\.0\.1: .*\(state=(\w+)\)",
                            dv.log())
        ours = [s for s in states if s != "GREETING"]
        assert 1 <= len(ours) <= 3, dv.log()[-3000:]
        assert set(ours) == {"READY"}


def test_smtputf8_and_8bit_message_reaches_dovecot(server, tmp_path):
    # Dovecot 2.3's LMTP offers 8BITMIME but not SMTPUTF8: final delivery
    # takes the message as it is instead of a refusal no retry could cure
    body = ("From: Zoë <zoe@remote.test>\r\nSubject: über smtpkit\r\n\r\n"
            "Grüße\r\n").encode()
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        srv = lmtp_server(server, dv)
        with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
            s.ehlo("client.test")
            assert s.has_extn("smtputf8")
            assert s.sendmail("zoe@remote.test", ["alice@example.test"], body,
                              mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
        assert [m.endswith(body) for m in dv.imap_messages("alice@example.test", "secret")] == [True]
        assert srv.stop() == 0
