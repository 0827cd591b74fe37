"""Delivery to a real MTA: a private Postfix (its own configuration, queue
and Maildir in a temporary folder) is the MX of postfix.test; smtpkit's
agent delivers to it over loopback."""

import shutil

import pytest

from agent_fixture import relay, wait_for  # noqa: F401
from delivery_harness import PrivatePostfix

pytestmark = [
    pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed"),
    pytest.mark.skipif(shutil.which("postfix") is None, reason="postfix not installed"),
]


def test_delivers_to_a_real_postfix(relay):
    r = relay({"postfix.test": [(10, "mx.postfix.test", "127.0.0.41")]})
    with PrivatePostfix("127.0.0.41", port=r.port, domains=["postfix.test"]) as pf:
        srv = r.start()
        r.send(["bob@postfix.test"],
               msg=b"From: alice@example.test\r\nSubject: to postfix\r\n\r\nhello\r\n.dot\r\n")
        r.wait_empty(timeout=30)
        msgs = pf.messages(wait=30)
        log = pf.log()
    assert len(msgs) == 1, log
    assert msgs[0].endswith(b"\n\nhello\n.dot\n"), msgs[0]
    assert b"\nSubject: to postfix\n" in msgs[0]
    assert b"Return-Path: <alice@example.test>" in msgs[0]  # Postfix's, not ours twice
    assert msgs[0].count(b"Return-Path:") == 1
    assert b"by mx.example.test (smtpkit)" in msgs[0]  # our Received header went along
    line = srv.wait_log(r"event=delivery .*to=<bob@postfix\.test> relay=mx\.postfix\.test"
                        r"\[127\.0\.0\.41\]:\d+ .*status=sent dsn=2\.0\.0 reply=\"250 2\.0\.0 Ok")
    assert line
