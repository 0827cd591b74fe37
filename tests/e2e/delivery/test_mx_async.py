"""The delivery agent's asynchronous MX resolver (c-ares in a libevent loop)
against a private dnsmasq: the cmocka binary tests/unit/test_mx_async.c
queries the zone below (kept in step with that file) and checks preference
order, the shuffle among equal preferences, every IPv4 and IPv6 address of
each host, the implicit MX, null MX (5.1.10), NXDOMAIN (5.1.2), no data,
an MX without an address (5.4.4), a silent server (4.4.3) and the
own-address loop check (5.4.6)."""

import os
import shutil
import subprocess

import pytest

from fakeservers import Dnsmasq, SilentDNS
from test_dsn_format import unit_binary

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

ZONE = [
    "--mx-host=order.test,mx2.order.test,20",
    "--mx-host=order.test,mx1.order.test,10",
    "--host-record=mx1.order.test,127.0.0.2,::1",
    "--host-record=mx2.order.test,127.0.0.3",
    "--mx-host=equal.test,a.equal.test,5",
    "--mx-host=equal.test,b.equal.test,5",
    "--mx-host=equal.test,c.equal.test,5",
    "--host-record=a.equal.test,127.0.0.11",
    "--host-record=b.equal.test,127.0.0.12",
    "--host-record=c.equal.test,127.0.0.13",
    "--host-record=amx.test,127.0.0.20",
    "--dns-rr=nullmx.test,15,000000",
    "--txt-record=nodata.test,nothing here",
    "--mx-host=dangling.test,nowhere.dangling.test,10",
    "--mx-host=self.test,mx.self.test,10",
    "--mx-host=self.test,mx2.self.test,20",
    "--host-record=mx.self.test,127.0.0.1",
    "--host-record=mx2.self.test,127.0.0.4",
    "--mx-host=backup.test,mx.backup.test,10",
    "--mx-host=backup.test,mx.self.test,20",
    "--host-record=mx.backup.test,127.0.0.5",
]


def test_async_resolver_against_dnsmasq(tmp_path):
    binary = unit_binary("test_mx_async")
    with Dnsmasq(str(tmp_path), ZONE) as dns, SilentDNS() as silent:
        r = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, SK_TEST_DNS=dns.server,
                                    SK_TEST_SILENT_DNS=silent.server))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "[  PASSED  ] 8 test(s)." in out, out
    assert "SKIPPED" not in out, out
