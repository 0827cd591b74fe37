"""ESMTP as a client and the rarer reply codes (docs/DELIVERY.md 2): HELO
after a 5xx to EHLO; an 8-bit message to a peer without 8BITMIME bounces
5.6.3 and one needing SMTPUTF8 to a peer without it 5.6.7, unsent; 551
bounces quoting the forward-path; 552 to RCPT is a 452 (deferred); SIGTERM
while delivering stops cleanly and the restart delivers what was left."""

import shutil
import signal
import time

import pytest

from agent_fixture import bounces, parse_dsn, relay, wait_for  # noqa: F401
from delivery_harness import ScriptedMX

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

ONE = {"remote.test": [(10, "mx1.remote.test", "127.0.0.61")]}
EIGHT_BIT = "From: alice@example.test\r\nSubject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode()


def send8(r, rcpt, mail_options):
    import smtplib
    with smtplib.SMTP("127.0.0.1", r.srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.sendmail("alice@example.test", [rcpt], EIGHT_BIT, mail_options=mail_options) == {}


def test_helo_after_a_5xx_to_ehlo(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.61", r.port, replies={"EHLO": "502 5.5.2 EHLO not here"}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        wait_for(lambda: mx.messages, what="delivery", log=srv.log)
        r.wait_empty()
    cmds = [c.split()[0].upper() for c in mx.sessions[0]["commands"]]
    assert cmds[:2] == ["EHLO", "HELO"]


def test_8bit_to_a_peer_without_8bitmime_bounces_5_6_3(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.61", r.port, capabilities=["PIPELINING", "SIZE 1000000"]) as mx:
        srv = r.start()
        send8(r, "bob@remote.test", ["BODY=8BITMIME"])
        r.wait_empty()
        dsn = bounces(srv)
    assert mx.messages == []
    assert parse_dsn(dsn[0])[1][0]["status"] == "5.6.3"


def test_smtputf8_needed_and_not_offered_bounces_5_6_7(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.61", r.port, capabilities=["PIPELINING", "8BITMIME"]) as mx:
        srv = r.start()
        send8(r, "b\u00f6b@remote.test", ["BODY=8BITMIME", "SMTPUTF8"])
        r.wait_empty()
        dsn = bounces(srv)
    assert mx.messages == []
    _, rcpts = parse_dsn(dsn[0])
    assert rcpts[0]["status"] == "5.6.7"


def test_551_bounces_quoting_the_forward_path(relay):
    r = relay(ONE)
    reply = "551 5.1.6 User not local; please try <bob@elsewhere.test>"
    with ScriptedMX("127.0.0.61", r.port, replies={"RCPT": reply}):
        srv = r.start()
        r.send(["bob@remote.test"])
        r.wait_empty()
        dsn = bounces(srv)
    _, rcpts = parse_dsn(dsn[0])
    assert rcpts[0]["status"] == "5.1.6"
    diag = rcpts[0]["diagnostic-code"].replace("\r\n ", " ")  # unfolded
    assert diag == "smtp; " + reply
    assert b"bob@elsewhere.test" in dsn[0]


def test_552_to_rcpt_is_treated_as_452(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.61", r.port,
                    replies={"RCPT": ["552 5.5.3 too many recipients", "250 2.1.5 Ok"]}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        # deferred, with the status class made temporary as the code was
        srv.wait_log(r"event=delivery .*status=deferred dsn=4\.5\.3 reply=\"552 5\.5\.3 too many")
        wait_for(lambda: mx.messages, what="the retry", log=srv.log)
        r.wait_empty()
    assert srv.messages("alice") == []


def test_sigterm_while_delivering_then_restart(relay):
    r = relay(ONE)

    def slow_dot(i, tx):
        time.sleep(0.3)
        return "250 2.0.0 Ok: queued"

    with ScriptedMX("127.0.0.61", r.port, replies={"DOT": slow_dot}) as mx:
        srv = r.start()
        for k in range(6):
            r.send(["bob@remote.test"], msg=b"Subject: t\r\nX-Seq: %d\r\n\r\nx\r\n" % k)
        assert srv.stop(signal.SIGTERM, timeout=20) == 0
        srv.wait_log(r"event=delivery-stop interrupted=\d+")
        srv.start()
        r.wait_empty(timeout=30)
        seqs = {int(m["data"].split(b"X-Seq: ")[1].split(b"\r\n")[0]) for m in mx.messages}
    assert seqs == set(range(6))
