"""`smtpkit queue flush` and `smtpkit queue bounce` against a running server
whose delivery agent answers on the control socket (smtpkit-queue(1)):
flush makes a deferred message due at once, so a scripted MX that answered
4xx first and 2xx next gets it long before its retry time; bounce gives up
on a deferred message, returns it to its local sender with an RFC 3464
report (5.0.0) and removes it from the queue. Loopback only, DNS from a
private dnsmasq; every wait bounded."""

import re
import shutil
import time

import pytest

from agent_fixture import MSG, bounces, parse_dsn, relay, wait_for  # noqa: F401
from delivery_harness import ScriptedMX
from test_queue_cli import queue_cmd, read_env

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

ONE = {"remote.test": [(10, "mx1.remote.test", "127.0.0.31")]}
# the retry after a 4xx would come an hour later: only a flush brings it now
LATE = "retry_min = 3600; retry_max = 7200;"


def deferred_id(r, srv):
    """The one queued message, once its first attempt is recorded deferred."""
    srv.wait_log(r"event=delivery .*status=deferred dsn=4\.")
    qid = wait_for(lambda: len(r.queued()) == 1 and r.queued()[0], what="the queued id",
                   log=srv.log)
    wait_for(lambda: read_env(r.queue, qid)[1][0]["state"] == "deferred",
             what="the deferral on disk", log=srv.log)
    return qid


def ask(bin_, srv, *args, timeout=10):
    """Run `smtpkit queue ARGS`; while the agent's record update of the
    previous attempt still runs it answers "being delivered now": ask again."""
    deadline = time.monotonic() + timeout
    while True:
        p = queue_cmd(bin_, srv, *args)
        if p.returncode == 0 or "being delivered now" not in p.stderr + p.stdout \
                or time.monotonic() > deadline:
            return p
        time.sleep(0.1)


def test_flush_retries_a_deferred_message_at_once(relay, smtpkit_bin):
    r = relay(ONE, delivery=LATE)
    with ScriptedMX("127.0.0.31", r.port,
                    replies={"RCPT": ["451 4.3.0 try again later", "250 2.1.5 Ok"]}) as mx:
        srv = r.start()
        r.send(["bob@remote.test"])
        qid = deferred_id(r, srv)
        _, rcpts = read_env(r.queue, qid)
        assert rcpts[0]["attempts"] == 1 and rcpts[0]["code"] == 451
        assert rcpts[0]["next"] >= int(time.time()) + 3000  # an hour away
        time.sleep(1.0)
        assert mx.messages == [] and len(mx.sessions) == 1  # nothing retries by itself

        t0 = time.monotonic()
        p = ask(smtpkit_bin, srv, "flush", qid)
        assert p.returncode == 0, (p.stdout, p.stderr)
        wait_for(lambda: mx.messages, timeout=10, what="the flushed retry", log=srv.log)
        r.wait_empty(timeout=10)
        assert time.monotonic() - t0 < 10
    assert len(mx.sessions) == 2
    assert b"\r\n\r\nhello from smtpkit\r\n" in mx.messages[0]["data"]
    srv.wait_log(r'event=queue-control command=FLUSH arg=%s answer="OK ' % qid)
    srv.wait_log(r"event=delivery id=%s .*status=sent dsn=2\." % qid)
    srv.wait_log(r"event=removed id=%s" % qid)
    assert srv.messages("alice") == []  # delivered: no bounce


def test_bounce_returns_a_deferred_message_to_its_sender(relay, smtpkit_bin):
    r = relay(ONE, delivery=LATE)
    with ScriptedMX("127.0.0.31", r.port,
                    replies={"RCPT": "451 4.3.0 try again later"}) as mx:
        srv = r.start()
        r.send(["bob@remote.test", "dave@remote.test"])
        qid = deferred_id(r, srv)

        p = ask(smtpkit_bin, srv, "bounce", qid)
        assert p.returncode == 0, (p.stdout, p.stderr)
        r.wait_empty(timeout=10)
        dsn = bounces(srv, "alice", timeout=10)
    assert mx.messages == []
    assert not (r.queue / "msg" / qid).exists()
    m, rcpts = parse_dsn(dsn[0])
    assert m["To"] and "alice@example.test" in m["To"]
    assert sorted(x["final-recipient"].split(";")[1].strip() for x in rcpts) == \
        ["bob@remote.test", "dave@remote.test"]
    for x in rcpts:
        assert x["action"] == "failed"
        assert x["status"] == "5.0.0"
    assert b"\r\nSubject: out\r\n" in dsn[0]  # its header section comes back with it
    srv.wait_log(r'event=queue-control command=BOUNCE arg=%s answer="OK ' % qid)
    srv.wait_log(r"event=bounce id=%s recipients=2" % qid)
    srv.wait_log(r"event=removed id=%s" % qid)
    # the queue no longer knows it
    p = queue_cmd(smtpkit_bin, srv, "show", qid)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert not re.search(qid, queue_cmd(smtpkit_bin, srv, "list").stdout)
