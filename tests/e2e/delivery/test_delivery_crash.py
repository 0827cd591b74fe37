"""kill -9 of the server while it delivers, then a restart: the queue is
scanned again and every message is delivered at least once, none lost
(RFC 5321 6.1; a duplicate after a crash is allowed). Bounded: 20 messages,
each wait limited."""

import re
import shutil
import signal
import time

import pytest

from agent_fixture import relay, wait_for  # noqa: F401
from delivery_harness import ScriptedMX

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

N = 20


def test_kill_9_while_delivering_then_restart_loses_nothing(relay):
    # one connection at a time: deliveries are sequential and slow, so the
    # kill always comes with messages left (and one in flight)
    r = relay({"remote.test": [(10, "mx1.remote.test", "127.0.0.31")]},
              delivery="connections_per_destination = 1;")

    def slow_dot(i, tx):
        time.sleep(0.2)  # deliveries are in flight when the kill comes
        return "250 2.0.0 Ok: queued"

    with ScriptedMX("127.0.0.31", r.port, replies={"DOT": slow_dot}) as mx:
        srv = r.start()
        for k in range(N):
            r.send(["bob@remote.test"],
                   msg=b"Subject: crash %d\r\nX-Seq: %d\r\n\r\nbody %d\r\n" % (k, k, k))
        wait_for(lambda: len(mx.messages) >= 3, what="some deliveries", log=srv.log)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=10)
        srv.log_file.close()
        left = len(r.queued())
        assert left > 0, "everything was delivered before the kill: the test proves nothing"
        srv.start()
        srv.wait_log(r"event=queue-scan queued=%d" % left)
        r.wait_empty(timeout=60)
        seen = set()
        for m in mx.messages:
            found = re.search(rb"X-Seq: (\d+)", m["data"])
            assert found, m["data"]
            seen.add(int(found.group(1)))
    assert seen == set(range(N))
    assert srv.messages("alice") == []  # nothing bounced
