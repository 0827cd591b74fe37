"""The delivery agent over loopback: a queued message goes to its MX and
leaves the queue; 4xx defers then a retry delivers; 5xx to one recipient
bounces only that one with an RFC 3464 DSN; the log has one event=delivery
line per attempt per recipient."""

import re
import threading
import shutil
import time

import pytest

from agent_fixture import MSG, bounces, parse_dsn, relay, wait_for  # noqa: F401
from delivery_harness import ScriptedMX

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")


def test_2xx_delivered_and_queue_empties(relay):
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.2")]})
    with ScriptedMX("127.0.0.2", r.port) as mx:
        srv = r.start()
        r.send(["bob@remote.test", "dave@remote.test"])
        wait_for(lambda: mx.messages, what="delivery", log=srv.log)
        r.wait_empty()
    m = mx.messages[0]
    assert m["mail_from"].startswith("FROM:<alice@example.test>")
    assert m["rcpt_tos"] == ["bob@remote.test", "dave@remote.test"]
    assert m["data"].endswith(MSG)  # after our Received header, unchanged
    assert m["data"].startswith(b"Received: ")
    lines = srv.wait_log(r"event=delivery id=\w+ to=<[^>]+> relay=mx1\.remote\.test\[127\.0\.0\.2\]"
                         r":\d+ delay=\d+ tls=no status=sent dsn=2\.0\.0 reply=\"250 2\.0\.0 Ok",
                         count=2)
    assert len(lines) == 2
    assert srv.messages("alice") == []  # no bounce


def test_4xx_then_2xx_on_the_retry(relay):
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.3")]})
    with ScriptedMX("127.0.0.3", r.port,
                    replies={"RCPT": ["451 4.3.0 try again later", "250 2.1.5 Ok"]}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        srv.wait_log(r"event=delivery .*to=<bob@remote\.test> .*status=deferred dsn=4\.3\.0 "
                     r"reply=\"451 4\.3\.0 try again later\"")
        qid = r.queued()[0]
        # the record is written after the attempt (on a worker): wait for it
        # (retry_min is 1 s: the record stays deferred that long; polled every 50 ms)
        wait_for(lambda: re.search(r"rcpt bob@remote\.test - - deferred 1 \d+ 451 4\.3\.0 ",
                                   r.envelope(qid) if r.queued() else ""),
                 what="the deferral in the record", log=srv.log)
        wait_for(lambda: mx.messages, timeout=20, what="the retry", log=srv.log)
        r.wait_empty()
    assert len(mx.sessions) >= 2
    assert mx.messages[0]["rcpt_tos"] == ["bob@remote.test"]
    srv.wait_log(r"event=delivery id=%s to=<bob@remote\.test> .*status=sent" % qid)
    assert srv.messages("alice") == []


def test_5xx_for_one_recipient_bounces_that_one(relay):
    def rcpt(i, addr):
        return "550 5.1.1 <%s>: no such user" % addr if addr.startswith("bad") else "250 2.1.5 Ok"

    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.4")]})
    with ScriptedMX("127.0.0.4", r.port, replies={"RCPT": rcpt}) as mx:
        srv = r.start()
        r.send(["good@remote.test", "bad@remote.test", "fine@remote.test"])
        wait_for(lambda: mx.messages, what="delivery", log=srv.log)
        r.wait_empty()
        dsn = bounces(srv)
    assert mx.messages[0]["rcpt_tos"] == ["good@remote.test", "fine@remote.test"]
    assert len(dsn) == 1
    m, rcpts = parse_dsn(dsn[0])
    assert m["To"].strip("<>") == "alice@example.test" or "alice@example.test" in m["To"]
    assert m["Auto-Submitted"] == "auto-replied"
    assert len(rcpts) == 1
    assert "bad@remote.test" in rcpts[0]["final-recipient"]
    assert rcpts[0]["action"] == "failed"
    assert rcpts[0]["status"] == "5.1.1"
    assert rcpts[0]["diagnostic-code"].startswith("smtp; 550 5.1.1")
    assert "no such user" in rcpts[0]["diagnostic-code"]
    assert "mx1.remote.test" in rcpts[0]["remote-mta"]
    srv.wait_log(r"event=delivery .*to=<bad@remote\.test> .*status=bounced dsn=5\.1\.1")
    srv.wait_log(r"event=bounce id=\w+ recipients=1 ")
    assert len(re.findall(r"event=delivery .*status=sent", srv.log())) == 2


def test_messages_to_one_destination_share_a_connection(relay):
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.5")]},
              delivery="messages_per_connection = 3; connections_per_destination = 1;")

    def slow_dot(i, tx):
        time.sleep(0.2)  # the next messages queue up behind this one
        return "250 2.0.0 Ok: queued"

    with ScriptedMX("127.0.0.5", r.port, replies={"DOT": slow_dot}) as mx:
        srv = r.start()
        for k in range(5):
            r.send(["bob@remote.test"], msg=b"Subject: %d\r\n\r\nx\r\n" % k)
        wait_for(lambda: len(mx.messages) == 5, what="5 deliveries", log=srv.log)
        r.wait_empty()
        # the idle connection is closed with QUIT after 2 s
        wait_for(lambda: all(s["closed_by"] == "quit" for s in mx.sessions), timeout=10,
                 what="QUIT on the idle connections")
    per_session = [len(s["messages"]) for s in mx.sessions]
    assert sum(per_session) == 5
    assert max(per_session) == 3  # the cap per connection
    assert len(mx.sessions) == 2
    for s in mx.sessions:
        cmds = [c.split()[0].upper() for c in s["commands"]]
        # RSET between messages; one EHLO per connection
        assert cmds.count("EHLO") == 1
        assert cmds.count("RSET") >= len(s["messages"]) - 1


def test_one_delay_warning_while_deferred(relay):
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.6")]},
              delivery="delay_warning = 1;")
    with ScriptedMX("127.0.0.6", r.port, replies={"RCPT": "451 4.3.0 not now"}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        srv.wait_log(r"event=delay-warning id=\w+ recipients=1 dsn_id=\w+", timeout=20)
        # more attempts, no second warning
        wait_for(lambda: len(mx.sessions) >= 4, timeout=30, what="more attempts", log=srv.log)
        qid = r.queued()[0]
        wait_for(lambda: "\nwarned 1\n" in r.envelope(qid), what="warned in the record")
    warnings = srv.messages("alice")
    assert len(warnings) == 1
    m, rcpts = parse_dsn(warnings[0])
    assert rcpts[0]["action"] == "delayed"
    assert rcpts[0]["status"] == "4.3.0"
    assert "will-retry-until" in rcpts[0]
    assert len(re.findall(r"event=delay-warning", srv.log())) == 1


def test_waiting_messages_follow_each_other_on_the_one_connection(relay):
    """With one connection per destination, the messages waiting for it
    start as soon as it is free (on it), not one per one-second tick: the 11
    that wait behind the first all go out in the time the tick would have
    taken for a few (before: at least 10 s, one message per tick)."""
    n = 12
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.8")]},
              delivery="messages_per_connection = 100; connections_per_destination = 1;")
    times = []
    lock = threading.Lock()

    def dot(i, tx):
        with lock:
            first = not times
            times.append(time.monotonic())
        if first:  # hold the first message until every message is queued
            deadline = time.monotonic() + 20
            while len(r.queued()) < n and time.monotonic() < deadline:
                time.sleep(0.05)
        return "250 2.0.0 Ok: queued"

    with ScriptedMX("127.0.0.8", r.port, replies={"DOT": dot}) as mx:
        srv = r.start()
        for k in range(n):
            r.send(["bob@remote.test"], msg=b"Subject: %d\r\n\r\nx\r\n" % k)
        wait_for(lambda: len(mx.messages) == n, timeout=40, what="%d deliveries" % n,
                 log=srv.log)
        r.wait_empty()
    assert len(mx.sessions) == 1  # every message on the one cached connection
    assert len(mx.sessions[0]["messages"]) == n
    span = times[-1] - times[1]
    assert span < (n - 2) / 2, "the waiting messages took %.1f s: one per tick" % span
