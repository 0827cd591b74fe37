"""The metrics endpoint (metrics = "127.0.0.1:PORT"): Prometheus text
exposition over HTTP, parsed by an independent parser (python3-prometheus-
client's) and checked line by line against the format's rules, with values
that follow real traffic: plaintext and STARTTLS sessions, accepted and
refused recipients, a message too big, a connection over the per-address
limit, the bytes received and the commit latency histogram."""

import math
import re
import smtplib
import ssl
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loopback import free_port

MSG = b"Subject: counted\r\n\r\n" + b"x" * 200 + b"\r\n"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (\S+)$')


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return r.read().decode("utf-8")


def check_format(text):
    """The text format's rules (0.0.4), strictly: HELP then TYPE once per
    family before its samples, samples of a family together, valid names,
    labels and values, counters named _total, histogram buckets cumulative
    and ending in +Inf equal to _count."""
    assert text.endswith("\n")
    families, order, current = {}, [], None
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in families, f"second HELP for {name}"
            families[name] = {"help": True, "type": None, "samples": []}
            order.append(name)
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name == current and families[name]["type"] is None, line
            assert typ in ("counter", "gauge", "histogram"), line
            families[name]["type"] = typ
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, value = m.group(1), m.group(4)
            base = re.sub(r"_(bucket|sum|count)$", "", name) \
                if families.get(current, {}).get("type") == "histogram" else name
            assert base == current, f"{name} outside its family ({current})"
            v = float(value)
            assert not math.isnan(v) and v >= 0, line
            families[current]["samples"].append((name, m.group(3) or "", v))
    for name, f in families.items():
        assert f["type"], f"{name} has no TYPE"
        # a family may have no samples yet (no code seen): HELP and TYPE stand
        if f["type"] == "counter":
            assert name.endswith("_total"), name
        if f["type"] == "histogram":
            assert f["samples"], name
            buckets = [(s[1], s[2]) for s in f["samples"] if s[0] == name + "_bucket"]
            values = [v for _, v in buckets]
            assert values == sorted(values), f"{name} buckets not cumulative"
            assert buckets[-1][0] == 'le="+Inf"'
            count = [s[2] for s in f["samples"] if s[0] == name + "_count"]
            assert count == [buckets[-1][1]]
    return families


def values(text):
    """{(name, ((label, value), ...)): value}, as the independent parser reads them."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def v(vals, name, **labels):
    return vals.get((name, tuple(sorted(labels.items()))), 0)


@pytest.fixture
def metrics_server(server, tmp_path):
    mport = free_port()
    extra = "\n".join([f'metrics = "127.0.0.1:{mport}";',
                       f'tls_certificate = "{tmp_path / "cert.pem"}";',
                       f'tls_key = "{tmp_path / "key.pem"}";',
                       "tls_generate_if_missing = true;"])
    srv = server(extra=extra, listener="starttls = true;",
                 limits={"message_size": 2048, "connections_per_ip": 2})
    srv.wait_log(rf"event=metrics-listening address=127\.0\.0\.1 port={mport} path=/metrics")
    return srv, mport


def test_metrics_follow_traffic(metrics_server):
    srv, mport = metrics_server
    before_text = scrape(mport)
    check_format(before_text)
    before = values(before_text)

    # a plaintext session: one message, one recipient accepted, one refused
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("carol@remote.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.rcpt("nobody@example.test")[0] == 550
        assert s.data(MSG)[0] == 250
    # a message over message_size: 552 to its data
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        assert r.cmd(b"Subject: big\r\n\r\n" + b"y" * 4000 + b"\r\n.\r\n")[0] == 552
        assert r.cmd("QUIT")[0] == 221
    # a STARTTLS session
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.starttls(context=ctx)
        s.ehlo("client.test")
        version = s.sock.version()
    # two connections held open, a third over connections_per_ip = 2
    held = [srv.raw(), srv.raw()]
    over = srv.raw(greet=False)
    assert over.reply()[0] == 421
    over.close()
    during = values(scrape(mport))
    assert v(during, "smtpkit_connections_open") == 2
    for r in held:
        assert r.cmd("QUIT")[0] == 221
        r.close()
    srv.wait_log(r"event=disconnect conn=7 ")

    after_text = scrape(mport)
    check_format(after_text)
    after = values(after_text)

    def delta(name, **labels):
        return v(after, name, **labels) - v(before, name, **labels)

    assert delta("smtpkit_connections_total") == 6
    assert v(after, "smtpkit_connections_open") == 0
    assert delta("smtpkit_connections_refused_total", reason="connections_per_ip") == 1
    assert delta("smtpkit_connections_refused_total", reason="connections") == 0
    assert delta("smtpkit_sessions_total", tls="none") == 5
    assert delta("smtpkit_sessions_total", tls=version) == 1
    assert delta("smtpkit_recipients_total", **{"class": "2xx", "code": "250"}) == 2
    assert delta("smtpkit_recipients_total", **{"class": "5xx", "code": "550"}) == 1
    assert delta("smtpkit_transactions_total", **{"class": "2xx", "code": "250"}) == 1
    assert delta("smtpkit_transactions_total", **{"class": "5xx", "code": "552"}) == 1
    assert delta("smtpkit_received_bytes_total") > len(MSG) + 4000
    assert delta("smtpkit_commit_seconds_count") == 1
    assert delta("smtpkit_commit_seconds_bucket", le="+Inf") == 1
    assert 0 < delta("smtpkit_commit_seconds_sum") < 10
    # the stored message is the one counted
    assert len(srv.messages("alice")) == 1 and srv.messages("bob") == []


def test_metrics_endpoint_answers_only_get_metrics(metrics_server):
    _, mport = metrics_server
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/", timeout=10)
    assert e.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{mport}/metrics", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code in (405, 501)  # libevent: method not allowed
    req = urllib.request.Request(f"http://127.0.0.1:{mport}/metrics", data=b"x" * 100,
                                 method="GET")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 413  # no request body accepted
    req = urllib.request.Request(f"http://127.0.0.1:{mport}/metrics", method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and r.read() == b""


def test_metrics_off_unless_set(server):
    srv = server()
    assert "event=metrics-listening" not in srv.log()


def test_metrics_bad_address(server, smtpkit_bin, tmp_path):
    srv = server(start=False, extra='metrics = "localhost:9325";')
    import subprocess
    r = subprocess.run([smtpkit_bin, "serve", "-c", str(srv.conf_path), "--check"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "metrics: use \"ADDRESS:PORT\"" in r.stderr, r.stderr
