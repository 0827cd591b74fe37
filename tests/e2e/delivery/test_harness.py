"""Self-test of the outbound test harness (delivery_harness.py): every
scripted MX behaviour driven with smtplib, the MX zone served by a private
dnsmasq and followed by `smtpkit probe`, and Postfix's smtp-sink receiving
a message as a real MX."""

import json
import shutil
import smtplib
import socket
import time

import pytest

from delivery_harness import PostfixSink, PrivatePostfix, ScriptedMX, mx_zone
from fakeservers import Dnsmasq, make_cert, run_smtpkit, server_tls_context, text

MSG = b"From: carol@example.test\r\nSubject: harness\r\n\r\nhello\r\n.leading dot\r\n"


def test_accepts_and_records():
    with ScriptedMX("127.0.0.2") as mx:
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            s.ehlo("client.test")
            assert s.has_extn("pipelining") and s.has_extn("smtputf8")
            assert s.sendmail("carol@example.test", ["bob@remote.test", "dave@remote.test"],
                              MSG) == {}
        time.sleep(0.2)
    assert len(mx.messages) == 1
    m = mx.messages[0]
    assert m["rcpt_tos"] == ["bob@remote.test", "dave@remote.test"]
    assert m["data"] == MSG  # dot-unstuffed again
    assert mx.sessions[0]["commands"][0] == "ehlo client.test"
    assert mx.sessions[0]["closed_by"] == "quit"
    assert not mx.errors


def test_4xx_then_2xx_on_the_next_attempt():
    with ScriptedMX("127.0.0.3", replies={"RCPT": ["451 4.3.0 try again later",
                                                   "250 2.1.5 Ok"]}) as mx:
        for attempt in range(2):
            with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
                refused = {}
                try:
                    refused = s.sendmail("carol@example.test", ["bob@remote.test"], MSG)
                except smtplib.SMTPRecipientsRefused as e:
                    refused = e.recipients
            if attempt == 0:
                assert refused == {"bob@remote.test": (451, b"4.3.0 try again later")}
            else:
                assert refused == {}
        time.sleep(0.2)
    assert len(mx.sessions) == 2 and len(mx.messages) == 1


def test_5xx_for_one_recipient():
    def rcpt(i, addr):
        return "550 5.1.1 <%s>: no such user" % addr if addr.startswith("bad") else "250 2.1.5 Ok"

    with ScriptedMX("127.0.0.4", replies={"RCPT": rcpt}) as mx:
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            refused = s.sendmail("carol@example.test", ["bad@remote.test", "good@remote.test"],
                                 MSG)
        time.sleep(0.2)
    assert refused == {"bad@remote.test": (550, b"5.1.1 <bad@remote.test>: no such user")}
    assert mx.messages[0]["rcpt_tos"] == ["good@remote.test"]


def test_421_closes():
    with ScriptedMX("127.0.0.5", replies={"MAIL": "421 4.7.0 too busy, closing"}) as mx:
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            s.ehlo()
            code, _ = s.mail("carol@example.test")
            assert code == 421
            with pytest.raises(smtplib.SMTPServerDisconnected):
                s.noop()
        time.sleep(0.2)
    assert mx.messages == []


def test_slow_and_silent_greeting():
    with ScriptedMX("127.0.0.6", greeting_delay=1.0) as mx:
        t0 = time.monotonic()
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            assert time.monotonic() - t0 >= 0.9
            assert s.noop()[0] == 250
    with ScriptedMX("127.0.0.6", replies={"GREETING": "SILENT"}) as mx:
        with pytest.raises((socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected)):
            smtplib.SMTP(mx.ip, mx.port, timeout=1)


def test_drop_in_the_middle_of_the_data():
    with ScriptedMX("127.0.0.8", drop_in_data=10) as mx:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
                s.sendmail("carol@example.test", ["bob@remote.test"], MSG * 20)
        time.sleep(0.2)
    assert mx.messages == [] and mx.sessions[0]["closed_by"] == "server"


def test_capabilities_as_scripted():
    with ScriptedMX("127.0.0.9", capabilities=["SIZE 1000", "STARTTLS"]) as mx:
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            s.ehlo()
            assert not s.has_extn("pipelining") and not s.has_extn("8bitmime")
            assert s.has_extn("starttls") and s.esmtp_features["size"] == "1000"
    with ScriptedMX("127.0.0.9", replies={"EHLO": "502 5.5.2 no EHLO here"}) as mx:
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            assert s.ehlo()[0] == 502
            assert s.helo()[0] == 250


def test_starttls_and_a_failed_handshake(tmp_path):
    import ssl
    crt, key = make_cert(str(tmp_path), cn="mx.remote.test", san="IP:127.0.0.13")
    client_ctx = ssl.create_default_context(cafile=crt)
    with ScriptedMX("127.0.0.13", capabilities=["STARTTLS", "8BITMIME"],
                    tls_context=server_tls_context(crt, key)) as mx:
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            s.ehlo()
            assert s.starttls(context=client_ctx)[0] == 220
            s.ehlo()
            assert not s.has_extn("starttls")  # once only
            assert s.sendmail("carol@example.test", ["bob@remote.test"], MSG) == {}
        time.sleep(0.2)
    assert mx.sessions[0]["tls"] and len(mx.messages) == 1
    with ScriptedMX("127.0.0.13", capabilities=["STARTTLS"], replies={"STARTTLS": "BREAK"},
                    tls_context=server_tls_context(crt, key)) as mx:
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            s.ehlo()
            with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, OSError)):
                s.starttls(context=client_ctx)
    with ScriptedMX("127.0.0.13", capabilities=["STARTTLS"]) as mx:  # no context: 454
        with smtplib.SMTP(mx.ip, mx.port, timeout=10) as s:
            s.ehlo()
            with pytest.raises(smtplib.SMTPResponseException) as e:
                s.starttls()
            assert e.value.smtp_code == 454


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")
def test_mx_zone_points_at_the_scripted_servers(tmp_path):
    port = None
    with ScriptedMX("127.0.0.10") as best, ScriptedMX("127.0.0.11", port=best.port):
        port = best.port
        zone = mx_zone({"remote.test": [(10, "mx1.remote.test", "127.0.0.10"),
                                        (20, "mx2.remote.test", "127.0.0.11")]})
        with Dnsmasq(str(tmp_path), zone) as dns:
            cp = run_smtpkit("probe", "--json", "--dns-server", dns.server, "--port", str(port),
                             "remote.test", timeout=60)
        out, err = text(cp)
        doc = json.loads(out)
        assert cp.returncode == 0, err
        assert [(h["preference"], h["host"]) for h in doc["mx"]["hosts"]] == [
            (10, "mx1.remote.test"), (20, "mx2.remote.test")]
        assert doc["probes"][0]["address"] == "127.0.0.10"
        time.sleep(0.2)
        assert len(best.sessions) == 1  # the best MX was the one connected to


@pytest.mark.skipif(shutil.which("smtp-sink") is None, reason="postfix not installed")
def test_postfix_smtp_sink_receives(tmp_path):
    with PostfixSink(str(tmp_path)) as sink:
        with smtplib.SMTP(sink.ip, sink.port, timeout=10) as s:
            assert b"smtp-sink" in s.ehlo()[1]
            assert s.sendmail("carol@example.test", ["bob@remote.test"], MSG) == {}
        deadline = time.monotonic() + 5
        while not sink.messages() and time.monotonic() < deadline:
            time.sleep(0.05)
        msgs = sink.messages()
    assert len(msgs) == 1
    assert b"Subject: harness" in msgs[0] and b"bob@remote.test" in msgs[0]


@pytest.mark.skipif(shutil.which("postfix") is None, reason="postfix not installed")
def test_private_postfix_delivers_to_its_maildir():
    with PrivatePostfix("127.0.0.12", domains=["postfix.test"]) as pf:
        with smtplib.SMTP(pf.ip, pf.port, timeout=20) as s:
            assert b"postfix.test" in s.ehlo("client.test")[1]
            assert s.sendmail("carol@example.test", ["bob@postfix.test"], MSG) == {}
            # not an open relay: other domains are refused
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                s.sendmail("carol@example.test", ["x@elsewhere.test"], MSG)
        msgs = pf.messages(wait=15)
        log = pf.log()
    assert len(msgs) == 1, log
    assert msgs[0].endswith(b"\n\nhello\n.leading dot\n"), msgs[0]  # unstuffed, LF in Maildir
    assert b"\nSubject: harness\n" in msgs[0]
    assert b"Delivered-To: bob@postfix.test" in msgs[0]
    assert "status=sent (delivered to maildir)" in log
