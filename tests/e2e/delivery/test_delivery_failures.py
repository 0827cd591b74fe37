"""The delivery agent's reply semantics (docs/DELIVERY.md 2): 5xx to MAIL
and to the end of data bounce the whole transaction; 421 defers; a silent
greeting, a refused connection and a drop in the middle of the data move on
to the next MX; null MX and NXDOMAIN bounce at once; a message over the
peer's SIZE bounces 5.3.4 unsent; the null sender's failures make no
bounce. Loopback only, DNS from a private dnsmasq."""

import re
import shutil
import time

import pytest

from agent_fixture import bounces, parse_dsn, relay, wait_for  # noqa: F401
from delivery_harness import ScriptedMX

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

ONE = {"remote.test": [(10, "mx1.remote.test", "127.0.0.21")]}
TWO = {"remote.test": [(10, "mx1.remote.test", "127.0.0.22"),
                       (20, "mx2.remote.test", "127.0.0.23")]}


def test_5xx_to_mail_bounces_every_recipient(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.21", r.port, replies={"MAIL": "550 5.7.1 sender refused"}) as mx:
        srv = r.start()
        r.send(["bob@remote.test", "dave@remote.test"])
        r.wait_empty()
        dsn = bounces(srv)
    assert mx.messages == []
    m, rcpts = parse_dsn(dsn[0])
    assert sorted(x["final-recipient"].split(";")[1].strip() for x in rcpts) == \
        ["bob@remote.test", "dave@remote.test"]
    for x in rcpts:
        assert x["status"] == "5.7.1"
        assert x["diagnostic-code"] == "smtp; 550 5.7.1 sender refused"
    assert len(re.findall(r"event=delivery .*status=bounced dsn=5\.7\.1", srv.log())) == 2


def test_5xx_to_end_of_data_bounces_every_recipient(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.21", r.port, replies={"DOT": "554 5.6.0 content refused"}) as mx:
        srv = r.start()
        r.send(["bob@remote.test", "dave@remote.test"])
        r.wait_empty()
        dsn = bounces(srv)
    assert mx.messages == []
    cmds = [c.split()[0].upper() for c in mx.sessions[0]["commands"]]
    assert cmds[cmds.index("DATA") + 1] == "RSET"  # a clean transaction state after the 554
    _, rcpts = parse_dsn(dsn[0])
    assert len(rcpts) == 2
    assert {x["status"] for x in rcpts} == {"5.6.0"}
    assert all(x["diagnostic-code"].startswith("smtp; 554 5.6.0") for x in rcpts)


def test_421_defers_then_the_retry_delivers(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.21", r.port,
                    replies={"RCPT": ["421 4.3.2 shutting down", "250 2.1.5 Ok"]}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        srv.wait_log(r"event=delivery .*status=deferred dsn=4\.3\.2 reply=\"421 4\.3\.2 shutting")
        assert mx.sessions[0]["closed_by"] != "quit"  # closed after the 421
        wait_for(lambda: mx.messages, what="the retry", log=srv.log)
        r.wait_empty()
    assert srv.messages("alice") == []


def test_silent_greeting_times_out_and_the_next_mx_takes_it(relay):
    r = relay(TWO)
    with ScriptedMX("127.0.0.22", r.port, greeting_delay=8) as slow, \
            ScriptedMX("127.0.0.23", r.port) as mx2:
        srv = r.start()
        r.send(["bob@remote.test"])
        wait_for(lambda: mx2.messages, timeout=15, what="delivery by mx2", log=srv.log)
        r.wait_empty()
    assert slow.messages == []
    srv.wait_log(r"event=delivery .*relay=mx2\.remote\.test\[127\.0\.0\.23\]:\d+ .*status=sent")


def test_first_mx_down_second_accepts(relay):
    r = relay(TWO)
    # nothing listens on 127.0.0.22: connection refused
    with ScriptedMX("127.0.0.23", r.port) as mx2:
        srv = r.start()
        r.send(["bob@remote.test"])
        wait_for(lambda: mx2.messages, what="delivery by mx2", log=srv.log)
        r.wait_empty()
    srv.wait_log(r"event=delivery .*relay=mx2\.remote\.test.*status=sent")


def test_drop_in_the_data_moves_to_the_next_mx(relay):
    r = relay(TWO)
    with ScriptedMX("127.0.0.22", r.port, drop_in_data=10) as dropper, \
            ScriptedMX("127.0.0.23", r.port) as mx2:
        srv = r.start()
        r.send(["bob@remote.test"])
        wait_for(lambda: mx2.messages, what="delivery by mx2", log=srv.log)
        r.wait_empty()
    assert dropper.messages == [] and dropper.sessions[0]["closed_by"] == "server"


def test_drop_in_the_data_on_the_only_mx_defers(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.21", r.port, drop_in_data=10):
        srv = r.start()
        r.send(["bob@remote.test"])
        srv.wait_log(r"event=delivery .*to=<bob@remote\.test> .*status=deferred dsn=4\.")
    assert len(r.queued()) == 1
    assert srv.messages("alice") == []


def test_null_mx_and_nxdomain_bounce_at_once(relay):
    r = relay({}, raw_zone=["--dns-rr=nullmx.test,15,000000"])
    srv = r.start()
    r.send(["bob@nullmx.test", "carol@nothere.test"])
    r.wait_empty()
    dsn = bounces(srv)
    assert len(dsn) == 1 or len(dsn) == 2  # one report per domain's round
    statuses = {}
    for raw in dsn:
        for x in parse_dsn(raw)[1]:
            statuses[x["final-recipient"].split(";")[1].strip()] = x["status"]
    assert statuses == {"bob@nullmx.test": "5.1.10", "carol@nothere.test": "5.1.2"}
    srv.wait_log(r"event=delivery .*to=<bob@nullmx\.test> relay=none .*status=bounced dsn=5\.1\.10")


def test_over_the_peer_size_bounces_unsent(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.21", r.port,
                    capabilities=["PIPELINING", "SIZE 100", "8BITMIME"]) as mx:
        srv = r.start()
        r.send(["bob@remote.test"], msg=b"Subject: big\r\n\r\n" + b"x" * 300 + b"\r\n")
        r.wait_empty()
        dsn = bounces(srv)
    assert mx.messages == []
    assert not any(c.upper().startswith("MAIL") for s in mx.sessions for c in s["commands"])
    _, rcpts = parse_dsn(dsn[0])
    assert rcpts[0]["status"] == "5.3.4"


def test_null_sender_failure_makes_no_bounce(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.21", r.port, replies={"RCPT": "550 5.1.1 no such user"}):
        srv = r.start()
        r.send(["bob@remote.test"], sender="")
        srv.wait_log(r"event=delivery .*status=bounced dsn=5\.1\.1")
        r.wait_empty()
    assert srv.messages("alice") == []
    assert "event=bounce " not in srv.log()


def test_mx_that_is_this_server_bounces_5_4_6(relay):
    # loop.test's only MX is 127.0.0.1 on the server's own port: RFC 5321 5.1
    r = relay({"loop.test": [(10, "mx.loop.test", "127.0.0.1")]})
    srv = r.start(mx_is_self=True)
    r.send(["bob@loop.test"])
    r.wait_empty()
    dsn = bounces(srv)
    _, rcpts = parse_dsn(dsn[0])
    assert rcpts[0]["status"] == "5.4.6"
    srv.wait_log(r"event=delivery .*to=<bob@loop\.test> relay=none .*status=bounced dsn=5\.4\.6")
    # no connection came back to us: only the client's two (probe and send)
    assert len(re.findall(r"event=connect ", srv.log())) == 2


def test_554_greeting_moves_to_the_next_mx(relay):
    r = relay(TWO)
    with ScriptedMX("127.0.0.22", r.port, replies={"GREETING": "554 5.7.1 no service"}) as mx1, \
            ScriptedMX("127.0.0.23", r.port) as mx2:
        srv = r.start()
        r.send(["bob@remote.test"])
        wait_for(lambda: mx2.messages, what="delivery by mx2", log=srv.log)
        r.wait_empty()
    assert mx1.messages == []
    assert srv.messages("alice") == []


def test_554_greeting_on_the_only_mx_bounces(relay):
    r = relay(ONE)
    with ScriptedMX("127.0.0.21", r.port, replies={"GREETING": "554 5.7.1 no service"}):
        srv = r.start()
        r.send(["bob@remote.test"])
        r.wait_empty()
        dsn = bounces(srv)
    _, rcpts = parse_dsn(dsn[0])
    assert rcpts[0]["status"] == "5.7.1"
    assert rcpts[0]["diagnostic-code"].startswith("smtp; 554 5.7.1")


def test_a_destination_whose_every_mx_failed_is_backed_off_as_a_whole(relay):
    r = relay(ONE, delivery="retry_min = 4; retry_max = 8;")
    with ScriptedMX("127.0.0.21", r.port,
                    replies={"GREETING": ["421 4.3.2 busy", "220 mx1 ESMTP"]}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        srv.wait_log(r"event=delivery .*status=deferred dsn=4\.3\.2")
        # a new message for the backed-off destination waits: no connection
        r.send(["carol@remote.test"])
        time.sleep(2)
        assert len(mx.sessions) == 1
        assert "to=<carol@remote.test>" not in srv.log()
        # after the back-off (4 s +- 10%) both go, in one round each
        wait_for(lambda: len(mx.messages) == 2, timeout=20, what="both delivered", log=srv.log)
        r.wait_empty()
