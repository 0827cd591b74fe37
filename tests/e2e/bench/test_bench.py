"""End-to-end tests of `smtpkit bench` (the load generator).

Against a real `smtpkit serve` (the shared `server` fixture): every message
the bench counts as accepted is a file in the recipient's Maildir new/, and
the printed and JSON figures agree with each other and with the disk;
refusals are counted and make the exit status 1. Against aiosmtpd: STARTTLS,
implicit TLS, certificate refusal, 4xx at the end of data. Against broken
peers: a closed port, a silent server (step timeout, --duration), and bad
options (exit 2).

Performance is measured, never asserted: no test depends on a rate.
"""

import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
from fakeservers import Aio, RecordingHandler, make_cert, server_tls_context  # noqa: E402

RUN_TIMEOUT = 120


@pytest.fixture
def bench(smtpkit_bin):
    def run(*args):
        cp = subprocess.run([smtpkit_bin, "bench", *args], capture_output=True,
                            timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
        return cp.returncode, cp.stdout.decode("utf-8", "replace"), \
            cp.stderr.decode("utf-8", "replace")
    return run


@pytest.fixture
def serve(server):
    # connections_per_ip above the bench's concurrency: a closing session
    # still counts on the server side for a moment
    srv = server(limits={"connections_per_ip": 500, "connections": 1000})
    yield srv
    srv.stop()


def target(srv):
    return f"{srv.host}:{srv.port}"


def files(srv, box):
    d = srv.maildir(box) / "new"
    return sorted(d.iterdir()) if d.is_dir() else []


def check_consistent(doc):
    """Every requested message is exactly one of the outcomes."""
    m = doc["messages"]
    assert m["sent"] == m["accepted"] + m["refused"] + m["failed"]
    assert m["requested"] == m["sent"] + m["not_sent"]
    assert m["refused"] == m["refused_4xx"] + m["refused_5xx"]
    c = doc["connections"]
    assert c["attempted"] == c["established"] + c["failed"]
    assert doc["latency_ms"]["n"] == m["accepted"]
    for key in ("latency_ms", "connect_ms"):
        lat = doc[key]
        if lat["n"]:
            assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


# ---- against smtpkit serve ---------------------------------------------------


def test_200_messages_all_on_disk_json(serve, bench):
    rc, out, err = bench("--server", target(serve), "--to", "alice@example.test",
                         "-c", "20", "-n", "200", "--json")
    assert rc == 0, out + err
    doc = json.loads(out)
    check_consistent(doc)
    m = doc["messages"]
    on_disk = len(files(serve, "alice"))
    assert m["requested"] == m["sent"] == m["accepted"] == on_disk == 200
    assert m["refused"] == m["failed"] == m["not_sent"] == 0
    # one message per connection by default
    assert doc["connections"]["established"] == doc["connections"]["attempted"] == 200
    assert doc["connect_ms"]["n"] == 200
    assert doc["elapsed_s"] > 0
    assert doc["messages_per_s"] == pytest.approx(200 / doc["elapsed_s"], rel=0.02)
    assert doc["server"] == target(serve)
    assert doc["aborted"] is False and doc["error"] is None
    assert "fsync" in doc["measured"]
    # the server logged one connection per message (plus the fixture's probe)
    serve.wait_log(r"event=disconnect conn=\d+ ", count=201)


def test_text_output_pipelining_several_per_connection(serve, bench):
    rc, out, err = bench("-s", target(serve), "--to", "alice@example.test", "--to",
                         "bob@example.test", "--rcpts", "2", "-c", "20", "-n", "200",
                         "--per-connection", "10", "--pipelining", "--size", "3000")
    assert rc == 0, out + err
    alice, bob = files(serve, "alice"), files(serve, "bob")
    assert len(alice) == len(bob) == 200
    assert re.search(r"^messages\s+200 requested: 200 sent, 200 accepted, 0 refused "
                     r"\(0 4xx, 0 5xx\), 0 failed, 0 not sent$", out, re.M), out
    assert re.search(r"^recipients\s+400 accepted, 0 refused$", out, re.M), out
    # 200 messages at 10 per connection: 20 connections
    assert re.search(r"^connections\s+20 attempted: 20 established, 0 failed", out, re.M), out
    assert re.search(r"^pipelining\s+used$", out, re.M), out
    m = re.search(r"^throughput\s+([\d.]+) messages/s", out, re.M)
    assert m and float(m.group(1)) > 0
    assert re.search(r"p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+ +max [\d.]+ .*n=200\)", out), out
    assert "measured:" in out
    # each message: exactly 3000 body octets, its own Message-ID
    ids = set()
    for p in alice:
        data = p.read_bytes()  # LF line ends (Unix Maildir): compared as RFC 822
        assert b"\r\n" not in data
        data = data.replace(b"\n", b"\r\n")
        head, sep, body = data.partition(b"\r\n\r\n")
        assert sep, data[:300]
        assert len(body) == 3000
        mid = re.search(rb"^Message-ID: (<[^>]+>)\r?$", head, re.M)
        assert mid, head
        ids.add(mid.group(1))
    assert len(ids) == 200


def test_refused_recipient_counted_exit_1(serve, bench):
    rc, out, err = bench("-s", target(serve), "--to", "nobody@example.test", "-c", "5",
                         "-n", "30", "--per-connection", "3", "--json")
    assert rc == 1, out + err
    doc = json.loads(out)
    check_consistent(doc)
    m = doc["messages"]
    assert m["sent"] == m["refused"] == m["refused_5xx"] == 30
    assert m["accepted"] == m["failed"] == 0
    assert doc["recipients"] == {"accepted": 0, "refused": 30}
    assert doc["refusal_codes"] == [{"code": 550, "count": 30}]
    assert doc["first_refusal"].startswith("RCPT: 550 5.1.1")
    # the connections went on after each refusal (RSET, next MAIL)
    assert doc["connections"]["established"] == 10
    assert doc["connections"]["errors"] == 0
    assert files(serve, "alice") == [] and files(serve, "bob") == []


def test_mixed_recipients_pipelined(serve, bench):
    # round-robin over a good and an unknown address: half accepted
    rc, out, err = bench("-s", target(serve), "--to", "alice@example.test", "--to",
                         "nobody@example.test", "-c", "4", "-n", "40", "--per-connection",
                         "5", "--pipelining", "--json")
    assert rc == 1, out + err
    doc = json.loads(out)
    check_consistent(doc)
    m = doc["messages"]
    assert m["accepted"] == 20 and m["refused"] == 20 and m["failed"] == 0
    assert len(files(serve, "alice")) == m["accepted"]
    assert doc["pipelining_used"] is True


# ---- broken peers and limits -------------------------------------------------


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nobody listens


def test_server_down_exit_3(bench):
    port = closed_port()
    rc, out, err = bench("-s", f"127.0.0.1:{port}", "--to", "a@example.test", "-n", "50",
                         "--json")
    assert rc == 3, out + err
    assert "no connection to" in err and "Connection refused" in err
    doc = json.loads(out)
    assert doc["aborted"] is True
    assert doc["messages"]["sent"] == 0 and doc["messages"]["not_sent"] == 50
    assert doc["connections"]["established"] == 0
    # it gave up after each session's first failure, not after 50 tries
    assert doc["connections"]["attempted"] == doc["connections"]["failed"] == 10


class SilentServer:
    """Accepts connections and never says a word (bounded lifetime)."""

    def __init__(self, lifetime=60):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns = []
        self.deadline = time.monotonic() + lifetime
        self.t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_silent_server_step_timeout_exit_3(bench):
    with SilentServer() as s:
        rc, out, err = bench("-s", f"127.0.0.1:{s.port}", "--to", "a@example.test", "-c", "3",
                             "-n", "10", "--timeout", "1")
    assert rc == 3, out + err
    assert "no reply to the greeting within 1 s" in err


def test_duration_bounds_the_run(bench):
    with SilentServer() as s:
        t0 = time.monotonic()
        rc, out, err = bench("-s", f"127.0.0.1:{s.port}", "--to", "a@example.test", "-c", "3",
                             "-n", "10", "--timeout", "30", "--duration", "1", "--json")
        took = time.monotonic() - t0
    assert rc == 1, out + err
    doc = json.loads(out)
    assert doc["time_limit_reached"] is True
    assert doc["messages"]["accepted"] == 0 and doc["messages"]["not_sent"] == 10
    # stopped by --duration, long before the 30 s step timeout
    assert took < 25


@pytest.mark.parametrize("args,needle", [
    ([], "--server"),
    (["-s", "127.0.0.1:25"], "--to"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "-c", "10001"], "at most 10000"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--concurrency", "0"], "at least 1"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "-n", "10000001"], "at most 10000000"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "-n", "1e3"], "not a whole number"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--size", "big"], "not a whole number"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--per-connection", "-1"], "not a whole"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--rcpts", "1001"], "at most 1000"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--duration", "0"], "--duration"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--timeout", "nan"], "--timeout"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--starttls", "--tls"], "exclude"),
    (["-s", "127.0.0.1:99999", "--to", "a@b.test"], "bad server"),
    (["-s", "127.0.0.1:25", "--to", "a b@b.test"], "not usable"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--from", "x\r\nRCPT"], "not usable"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "--bogus"], "unknown option"),
    (["-s", "127.0.0.1:25", "--to", "a@b.test", "extra"], "unexpected argument"),
    (["-s", "127.0.0.1:25", "--to"], "needs a value"),
])
def test_bad_options_exit_2(bench, args, needle):
    rc, out, err = bench(*args)
    assert rc == 2, (rc, out, err)
    assert needle in err, err
    assert out == ""


def test_help(bench):
    rc, out, err = bench("--help")
    assert rc == 0
    assert "--concurrency" in out and "--per-connection" in out and "Exit status" in out


# ---- TLS and 4xx against aiosmtpd ----------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("bench-cert")))


def test_starttls_verified_with_cafile(bench, cert):
    crt, key = cert
    with Aio(tls_context=server_tls_context(crt, key), require_starttls=True) as a:
        rc, out, err = bench("-s", f"127.0.0.1:{a.port}", "--to", "x@example.test",
                             "--starttls", "--cafile", crt, "-c", "4", "-n", "20",
                             "--per-connection", "3", "--json")
        got = len(a.handler.messages)
    assert rc == 0, out + err
    doc = json.loads(out)
    check_consistent(doc)
    assert doc["messages"]["accepted"] == got == 20
    assert doc["tls"]["version"].startswith("TLS")
    # 20 messages at 3 per connection: 7 connections
    assert doc["connections"]["established"] == 7


def test_starttls_unverified_certificate_exit_4(bench, cert):
    crt, key = cert
    with Aio(tls_context=server_tls_context(crt, key), require_starttls=True) as a:
        rc, out, err = bench("-s", f"127.0.0.1:{a.port}", "--to", "x@example.test",
                             "--starttls", "-c", "2", "-n", "10")
        got = len(a.handler.messages)
    assert rc == 4, out + err
    assert "certificate" in err
    assert got == 0


def test_starttls_insecure_and_implicit_tls(bench, cert):
    crt, key = cert
    with Aio(tls_context=server_tls_context(crt, key), require_starttls=True) as a:
        rc, out, err = bench("-s", f"127.0.0.1:{a.port}", "--to", "x@example.test",
                             "--starttls", "-k", "-c", "2", "-n", "6")
        assert rc == 0, out + err
        assert len(a.handler.messages) == 6
        assert re.search(r"^tls\s+TLSv1\.[23] \S+ \(STARTTLS\)$", out, re.M), out
    with Aio(implicit_tls=server_tls_context(crt, key)) as a:
        rc, out, err = bench("-s", f"127.0.0.1:{a.port}", "--tls", "--cafile", crt, "--to",
                             "x@example.test", "-c", "3", "-n", "9", "--json")
        assert rc == 0, out + err
        assert len(a.handler.messages) == 9
        assert json.loads(out)["messages"]["accepted"] == 9


def test_starttls_not_offered_exit_4(serve, bench):
    rc, out, err = bench("-s", target(serve), "--to", "alice@example.test", "--starttls",
                         "-c", "2", "-n", "4")
    if "STARTTLS" not in err:
        pytest.skip("this server offers STARTTLS on its plain listener")
    assert rc == 4, out + err
    assert "does not offer STARTTLS" in err
    assert files(serve, "alice") == []


def test_starttls_against_serve(server, bench, tmp_path):
    # smtpkit serve with STARTTLS on its listener and a certificate it makes
    # itself (issued to its server name, so -k for the IP literal)
    srv = server(limits={"connections_per_ip": 500},
                 listener="starttls = true;",
                 extra=f'tls_certificate = "{tmp_path / "tls" / "cert.pem"}";\n'
                       f'tls_key = "{tmp_path / "tls" / "key.pem"}";\n'
                       "tls_generate_if_missing = true;")
    rc, out, err = bench("-s", target(srv), "--to", "alice@example.test", "--to",
                         "bob@example.test", "--starttls", "-k", "-c", "10", "-n", "60",
                         "--per-connection", "4", "--pipelining", "--json")
    assert rc == 0, out + err
    doc = json.loads(out)
    check_consistent(doc)
    assert doc["messages"]["accepted"] == 60
    assert len(files(srv, "alice")) + len(files(srv, "bob")) == 60
    assert doc["tls"]["version"].startswith("TLSv1.")
    assert doc["connections"]["established"] == 15
    # without -k the self-issued certificate is refused before any mail
    rc, out, err = bench("-s", target(srv), "--to", "alice@example.test", "--starttls",
                         "-c", "2", "-n", "4")
    assert rc == 4, out + err
    assert "certificate" in err
    assert len(files(srv, "alice")) + len(files(srv, "bob")) == 60
    assert srv.stop() == 0


class TempFailHandler(RecordingHandler):
    async def handle_DATA(self, server, session, envelope):
        return "451 4.3.0 Try again later"


def test_4xx_after_data_counted(bench):
    with Aio(handler=TempFailHandler()) as a:
        rc, out, err = bench("-s", f"127.0.0.1:{a.port}", "--to", "x@example.test", "-c", "2",
                             "-n", "6", "--per-connection", "3", "--json")
    assert rc == 1, out + err
    doc = json.loads(out)
    check_consistent(doc)
    m = doc["messages"]
    assert m["refused"] == m["refused_4xx"] == 6 and m["accepted"] == 0
    assert doc["refusal_codes"] == [{"code": 451, "count": 6}]
    assert doc["first_refusal"].startswith("end of data: 451")
