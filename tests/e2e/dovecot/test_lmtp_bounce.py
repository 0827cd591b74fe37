"""With `lmtp` set, a bounce to a local sender goes to Dovecot by LMTP, as
every local message does: the delivery agent's RFC 3464 report for a
recipient an MX refused with 550 reaches the sender's IMAP INBOX, and
nothing is written into a Maildir behind Dovecot's back. Loopback only:
a private Dovecot, a private dnsmasq, a scripted MX."""

import shutil
import smtplib
import sys
import time
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(E2E / "client"))  # fakeservers: dnsmasq
sys.path.insert(0, str(E2E / "delivery"))  # the scripted MX, the DSN parser

from agent_fixture import parse_dsn, wait_for  # noqa: E402
from delivery_harness import ScriptedMX, free_port, mx_zone  # noqa: E402
from fakeservers import Dnsmasq  # noqa: E402
from private_dovecot import PrivateDovecot  # noqa: E402
from test_lmtp import USERS, lmtp_server  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")

MSG = (b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: out via lmtp\r\n\r\n"
       b"hello\r\n")


def test_bounce_to_local_sender_goes_by_lmtp(server, tmp_path):
    port = free_port("127.0.0.1")
    queue = tmp_path / "queue"
    with Dnsmasq(str(tmp_path), mx_zone({"remote.test": [(10, "mx1.remote.test",
                                                          "127.0.0.41")]})) as dns, \
            ScriptedMX("127.0.0.41", port, replies={"RCPT": "550 5.1.1 no such user"}) as mx, \
            PrivateDovecot(tmp_path, users=USERS) as dv:
        srv = lmtp_server(server, dv, extra=(
            f'relay_queue = "{queue}";\ntrusted_networks = [ "127.0.0.0/8" ];\n'
            f'delivery = {{ dns_servers = [ "{dns.server}" ]; smtp_port = {port}; '
            "retry_min = 1; retry_max = 2; };\n"))
        t0 = time.monotonic()
        with smtplib.SMTP(srv.host, srv.port, timeout=30) as s:
            assert s.sendmail("alice@example.test", ["bob@remote.test"], MSG) == {}
        srv.wait_log(r"event=delivery .*status=bounced dsn=5\.1\.1", timeout=20)
        srv.wait_log(r"event=bounce id=\S+ recipients=1", timeout=20)
        got = wait_for(lambda: dv.imap_messages("alice@example.test", "secret"), timeout=20,
                       what="the bounce in alice's INBOX over IMAP", log=srv.log)
        assert time.monotonic() - t0 < 30
        assert wait_for(lambda: not list((queue / "env").iterdir()), timeout=10,
                        what="an empty queue", log=srv.log)
    assert mx.messages == []
    assert len(got) == 1
    # Dovecot delivered it (its own Delivered-To): not written into the
    # Maildir behind its back
    assert b"Delivered-To: alice@example.test" in got[0]
    m, rcpts = parse_dsn(got[0])
    assert [x["status"] for x in rcpts] == ["5.1.1"]
    assert rcpts[0]["final-recipient"].split(";")[1].strip() == "bob@remote.test"
    assert "550 5.1.1 no such user" in rcpts[0]["diagnostic-code"]
    assert srv.stop() == 0
