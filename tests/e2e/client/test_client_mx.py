"""MX resolution (RFC 5321 5.1, RFC 7505) by `smtpkit probe` and `smtpkit
send` against dnsmasq serving a test zone on loopback: preference order,
stable order for equal preference, A fallback, null MX, NXDOMAIN, a DNS
server that never answers."""

import json
import shutil
import time

import pytest

from fakeservers import Aio, Dnsmasq, SilentDNS, free_port, run_smtpkit, text

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

ZONE = [
    # Preferences given out of order; mx1 (10) points where nothing listens.
    "--mx-host=example.test,mx2.example.test,20",
    "--mx-host=example.test,mx1.example.test,10",
    "--host-record=mx1.example.test,127.0.0.2",
    "--host-record=mx2.example.test,127.0.0.1",
    # Equal preference: kept in a stable order (by name) by probe.
    "--mx-host=equal.test,mxb.equal.test,5",
    "--mx-host=equal.test,mxa.equal.test,5",
    "--host-record=mxa.equal.test,127.0.0.1",
    "--host-record=mxb.equal.test,127.0.0.1",
    # No MX at all: the A record is the mail host.
    "--host-record=amx.test,127.0.0.1",
    # RFC 7505 null MX: preference 0, target "." (RDATA 0000 00).
    "--dns-rr=nullmx.test,15,000000",
    # An MX whose host has no address.
    "--mx-host=dangling.test,nowhere.dangling.test,10",
]


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    with Dnsmasq(str(tmp_path_factory.mktemp("dns")), ZONE) as d:
        yield d


def probe(dns, *args, timeout=60):
    cp = run_smtpkit("probe", "--json", "--dns-server", dns.server, *args, timeout=timeout)
    out, err = text(cp)
    return cp.returncode, json.loads(out), err


def test_mx_preference_order_and_fallback_to_next_host(dns):
    with Aio() as srv:
        rc, doc, err = probe(dns, "--port", str(srv.port), "example.test")
    assert rc == 0, err
    assert doc["mode"] == "mx"
    assert [(h["preference"], h["host"]) for h in doc["mx"]["hosts"]] == [
        (10, "mx1.example.test"), (20, "mx2.example.test")]
    probes = doc["probes"]
    assert [p["host"] for p in probes] == ["mx1.example.test", "mx2.example.test"]
    assert probes[0]["exit"] == 3 and "127.0.0.2" in probes[0]["error"]
    assert probes[1]["exit"] == 0 and probes[1]["address"] == "127.0.0.1"
    assert probes[1]["greeting"]["code"] == 220


def test_mx_all_probes_every_host(dns):
    with Aio() as srv:
        cp = run_smtpkit("probe", "--all", "--dns-server", dns.server, "--port", str(srv.port),
                         "example.test")
    out, err = text(cp)
    # The first host fails (nothing on 127.0.0.2): --all reports that.
    assert cp.returncode == 3, out + err
    assert "MX records for example.test:" in out
    assert out.index("mx1.example.test") < out.index("mx2.example.test")
    assert "Probing mx2.example.test" in out and "OK: 127.0.0.1:" in out


def test_equal_preference_stable_order(dns):
    with Aio() as srv:
        rc, doc, _ = probe(dns, "--all", "--port", str(srv.port), "equal.test")
    assert rc == 0
    assert [h["host"] for h in doc["mx"]["hosts"]] == ["mxa.equal.test", "mxb.equal.test"]
    assert [p["exit"] for p in doc["probes"]] == [0, 0]


def test_a_record_fallback(dns):
    with Aio() as srv:
        rc, doc, err = probe(dns, "--port", str(srv.port), "amx.test")
        cp = run_smtpkit("probe", "--dns-server", dns.server, "--port", str(srv.port),
                         "amx.test")
    assert rc == 0, err
    assert doc["mx"]["implicit"] is True
    assert doc["probes"][0]["host"] == "amx.test"
    assert "has no MX record: its own address is the mail host" in text(cp)[0]


def test_null_mx(dns):
    rc, doc, err = probe(dns, "nullmx.test")
    assert rc == 5
    assert doc["mx"]["null_mx"] is True
    assert doc["probes"] == []
    assert "nullmx.test accepts no mail" in err and "RFC 7505" in err


def test_nxdomain(dns):
    rc, doc, err = probe(dns, "no-such-domain.test")
    assert rc == 5
    assert "does not exist (NXDOMAIN)" in err
    assert doc["exit"] == 5 and "NXDOMAIN" in doc["error"]


def test_mx_host_without_address(dns):
    rc, doc, err = probe(dns, "--port", str(free_port()), "dangling.test")
    assert rc == 5
    assert "could not resolve nowhere.dangling.test" in err


def test_dns_timeout_is_bounded():
    with SilentDNS() as d:
        t0 = time.monotonic()
        cp = run_smtpkit("probe", "--timeout", "1", "--dns-server", d.server, "example.test")
        elapsed = time.monotonic() - t0
    out, err = text(cp)
    assert cp.returncode == 5, out + err
    assert "did not answer in time" in err
    assert elapsed < 6


def test_bad_dns_server_is_usage_error():
    cp = run_smtpkit("probe", "--dns-server", "not-an-ip", "example.test")
    assert cp.returncode == 2
    assert "bad DNS server" in text(cp)[1]


def test_send_via_mx(dns):
    with Aio() as srv:
        cp = run_smtpkit("send", "-v", "--dns-server", dns.server, "--port", str(srv.port),
                         "--from", "a@example.org", "--to", "user@example.test", "--body", "hi")
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        # mx1 (127.0.0.2) refuses; the message goes to mx2.
        assert "connecting to 127.0.0.2:" in out
        assert len(srv.handler.messages) == 1
        assert srv.handler.messages[0]["rcpt_tos"] == ["user@example.test"]
    cp = run_smtpkit("send", "--dns-server", dns.server, "--from", "a@example.org", "--to",
                     "user@nullmx.test", "--body", "hi")
    assert cp.returncode == 5
    assert "accepts no mail" in text(cp)[1]
    cp = run_smtpkit("send", "--dns-server", dns.server, "--from", "a@example.org", "--to",
                     "user@nowhere.test", "--body", "hi")
    assert cp.returncode == 5
    assert "NXDOMAIN" in text(cp)[1]


def test_ipv6_literal_target():
    port = free_port()
    cp = run_smtpkit("probe", "--timeout", "2", f"[::1]:{port}")
    out, err = text(cp)
    assert cp.returncode == 3
    assert f"[::1]:{port}" in err
