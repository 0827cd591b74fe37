"""Shared set-up of the delivery agent's end-to-end tests: an smtpkit server
with a relay queue whose delivery group points at a private dnsmasq (the MX
zone) and at a common port on which the scripted MX servers listen, each on
its own 127.0.0.x address (loopback only). Every wait is bounded."""

import email
import email.policy
import smtplib
import time
from pathlib import Path

import pytest

from delivery_harness import free_port, mx_zone
from fakeservers import Dnsmasq

MSG = (b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: out\r\n\r\n"
       b"hello from smtpkit\r\n.a line with a leading dot\r\n")


class Relay:
    """dnsmasq for `zone` plus an smtpkit server relaying for 127.0.0.0/8."""

    def __init__(self, server, tmp_path, zone, delivery="", raw_zone=()):
        self.tmp_path = tmp_path
        self.port = free_port("127.0.0.1")
        self.queue = tmp_path / "queue"
        self.dns = Dnsmasq(str(tmp_path), mx_zone(zone) + list(raw_zone))
        self.dns.__enter__()
        self.delivery = delivery
        self.extra = self._extra()
        self.server_factory = server
        self.srv = None

    def _extra(self):
        return ('trusted_networks = [ "127.0.0.0/8" ];\n'
                f'relay_queue = "{self.queue}";\n'
                "delivery = {\n"
                f'  dns_servers = [ "{self.dns.server}" ];\n'
                f"  smtp_port = {self.port};\n"
                + ("" if "retry_min" in self.delivery else "  retry_min = 1; retry_max = 2;\n")
                + "  timeout_greeting = 3; timeout_mail = 5; timeout_rcpt = 5;\n"
                "  timeout_data = 5; timeout_data_block = 5; timeout_final_dot = 5;\n"
                f"  {self.delivery}\n"
                "};\n")

    def start(self, mx_is_self=False, **kw):
        """mx_is_self: the MX port is the server's own (a mail loop)."""
        if not mx_is_self:
            self.srv = self.server_factory(extra=self.extra, **kw)
            return self.srv
        self.srv = self.server_factory(extra=self.extra, start=False, **kw)
        self.port = self.srv.port
        self.extra = self._extra()
        self.srv.write_config(extra=self.extra, **kw)
        return self.srv.start()

    def close(self):
        self.dns.__exit__(None, None, None)

    def send(self, rcpts, sender="alice@example.test", msg=MSG):
        with smtplib.SMTP("127.0.0.1", self.srv.port, timeout=10) as s:
            s.ehlo("client.test")
            refused = s.sendmail(sender, rcpts, msg)
        assert refused == {}

    def queued(self):
        d = self.queue / "env"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def wait_empty(self, timeout=20):
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                raise AssertionError("queue not empty: %s\n%s" % (self.queued(), self.srv.log()))
            time.sleep(0.05)

    def envelope(self, qid):
        return (self.queue / "env" / qid).read_text()


def wait_for(pred, timeout=20, what="condition", log=None):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (("\n" + log()) if log else ""))
        time.sleep(0.05)


def parse_dsn(raw):
    """The DSN as parsed by Python's email package: (message, [per-recipient
    field dicts])."""
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    assert m.get_param("report-type") == "delivery-status"
    parts = m.get_payload()
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1
    blocks = status[0].get_payload()  # per-message block, then one per recipient
    return m, [dict((k.lower(), v) for k, v in b.items()) for b in blocks[1:]]


def bounces(srv, name="alice", count=1, timeout=20):
    return wait_for(lambda: len(srv.messages(name)) >= count and srv.messages(name),
                    timeout, "a bounce in %s's Maildir" % name, srv.log)


@pytest.fixture
def relay(server, tmp_path):
    """Factory: relay(zone, delivery="", raw_zone=()) -> Relay (not started)."""
    made = []

    def make(zone, delivery="", raw_zone=()):
        r = Relay(server, tmp_path, zone, delivery, raw_zone)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


__all__ = ["Relay", "MSG", "wait_for", "parse_dsn", "bounces", "relay", "Path"]
