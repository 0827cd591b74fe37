"""The outbound queue on the metrics endpoint (smtpkit-serve(1) METRICS):
smtpkit_queue_messages, smtpkit_queue_recipients and
smtpkit_queue_oldest_age_seconds by state (pending, deferred, held), and
smtpkit_deliveries_total by result, read with python3-prometheus-client's
parser while a scripted MX answers 4xx, a second destination refuses
connections (its back-off keeps a later message pending) and a message is
held with `smtpkit queue hold`."""

import pwd
import shutil
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_fixture import relay, wait_for  # noqa: F401
from delivery_harness import ScriptedMX, free_port

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode("utf-8")
    out, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, types


def v(vals, name, **labels):
    return vals[(name, tuple(sorted(labels.items())))]


def rcpt_states(queue, mid):
    lines = (queue / "env" / mid).read_text().split("\n")
    return [ln.split(" ")[4] for ln in lines if ln.startswith("rcpt ")]


def queue_cmd(bin_, srv, *args):
    # the configuration's directory must be traversable by the server's user
    for d in (srv.conf_path.parent, *srv.conf_path.parents):
        if str(d) in ("/", "/tmp"):
            break
        d.chmod(d.stat().st_mode | 0o011)
    return subprocess.run([bin_, "queue", "-c", str(srv.conf_path), *args],
                          capture_output=True, text=True, timeout=30)


def test_queue_gauges_and_delivery_counters(relay, smtpkit_bin):
    mport = free_port("127.0.0.1")
    r = relay({"defer.test": [(10, "mx1.defer.test", "127.0.0.61")],
               "down.test": [(10, "mx1.down.test", "127.0.0.62")]},
              delivery="retry_min = 600; retry_max = 600;")
    r.extra += f'metrics = "127.0.0.1:{mport}";\n'
    with ScriptedMX("127.0.0.61", r.port, replies={"RCPT": "451 4.3.0 try later"}) as mx:
        srv = r.start()
        assert pwd.getpwnam(srv.user)
        srv.wait_log(rf"event=metrics-listening address=127\.0\.0\.1 port={mport}")
        vals, types = scrape(mport)
        for state in ("pending", "deferred", "held"):
            assert v(vals, "smtpkit_queue_messages", state=state) == 0
            assert v(vals, "smtpkit_queue_recipients", state=state) == 0
            assert v(vals, "smtpkit_queue_oldest_age_seconds", state=state) == 0
        assert types["smtpkit_queue_messages"] == "gauge"
        assert types["smtpkit_queue_oldest_age_seconds"] == "gauge"
        assert types["smtpkit_deliveries"] == "counter"
        assert v(vals, "smtpkit_deliveries_total", result="deferred") == 0
        t0 = time.time()

        # two messages to the 4xx MX: deferred; the second one is then held
        r.send(["a@defer.test", "b@defer.test"])
        first = r.queued()[0]
        r.send(["c@defer.test"])
        held = [q for q in r.queued() if q != first][0]
        wait_for(lambda: rcpt_states(r.queue, first) == ["deferred", "deferred"]
                 and rcpt_states(r.queue, held) == ["deferred"], what="deferrals", log=srv.log)
        q = queue_cmd(smtpkit_bin, srv, "hold", held)
        assert q.returncode == 0, q.stderr
        assert rcpt_states(r.queue, held) == ["held"]

        # nothing listens on the second MX: deferred, and its back-off keeps
        # the next message for that domain untried (pending)
        r.send(["d@down.test"])
        down = [x for x in r.queued() if x not in (first, held)][0]
        wait_for(lambda: rcpt_states(r.queue, down) == ["deferred"], what="down deferral",
                 log=srv.log)
        r.send(["e@down.test", "f@down.test"])
        pending = [x for x in r.queued() if x not in (first, held, down)][0]
        time.sleep(1.5)
        assert rcpt_states(r.queue, pending) == ["pending", "pending"]

        vals, _ = scrape(mport)
        elapsed = time.time() - t0
    assert mx.messages == []
    assert v(vals, "smtpkit_queue_messages", state="deferred") == 2
    assert v(vals, "smtpkit_queue_messages", state="held") == 1
    assert v(vals, "smtpkit_queue_messages", state="pending") == 1
    assert v(vals, "smtpkit_queue_recipients", state="deferred") == 3
    assert v(vals, "smtpkit_queue_recipients", state="held") == 1
    assert v(vals, "smtpkit_queue_recipients", state="pending") == 2
    age = {s: v(vals, "smtpkit_queue_oldest_age_seconds", state=s)
           for s in ("pending", "deferred", "held")}
    # the oldest deferred message is the first one sent, the pending one the last
    assert 1 <= age["deferred"] <= elapsed + 1
    assert age["pending"] <= age["held"] <= age["deferred"]
    assert age["pending"] >= 1  # sent 1.5 s before the scrape
    assert v(vals, "smtpkit_deliveries_total", result="deferred") == 4  # a, b, c, d
    assert v(vals, "smtpkit_deliveries_total", result="sent") == 0
    assert v(vals, "smtpkit_deliveries_total", result="bounced") == 0
    assert v(vals, "smtpkit_queue_unreadable") == 0
