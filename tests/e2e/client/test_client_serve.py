"""`smtpkit probe` and `smtpkit send` against `smtpkit serve` itself,
through the shared `server` fixture of tests/e2e/conftest.py: both sides of
the project talking to each other over loopback."""

import json

import pytest

from fakeservers import run_smtpkit, text


@pytest.fixture
def serve(request):
    try:
        factory = request.getfixturevalue("server")
    except pytest.FixtureLookupError:
        pytest.skip("the `server` fixture (tests/e2e/conftest.py) is not available")
    srv = factory()
    yield srv
    srv.stop()


def test_probe_default_against_serve(serve):
    cp = run_smtpkit("probe", f"{serve.host}:{serve.port}")
    out, err = text(cp)
    assert cp.returncode == 0, out + err
    assert "220 " in out and "220: The greeting" in out
    assert "OK: " in out


def test_probe_advanced_against_serve(serve):
    cp = run_smtpkit("probe", "--json", "-a", "--from", "someone@remote.test", "--rcpt",
                     "alice@example.test", f"{serve.host}:{serve.port}")
    out, err = text(cp)
    assert cp.returncode == 0, out + err
    doc = json.loads(out)
    p = doc["probes"][0]
    kws = {c["keyword"] for c in p["capabilities"]}
    assert {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES"} <= kws
    assert p["size_limit"] and p["size_limit"] > 0
    assert p["test"]["mail_code"] == 250
    assert p["test"]["rcpt"][0]["code"] == 250
    # ENHANCEDSTATUSCODES: MAIL and RCPT replies carry enhanced codes of the same class.
    mail = [r for r in p["replies"] if r["command"] == "MAIL"][0]
    rcpt = [r for r in p["replies"] if r["command"] == "RCPT"][0]
    assert mail["enhanced"].startswith("2.") and rcpt["enhanced"].startswith("2.")
    assert not any(r["unexpected_for_command"] for r in p["replies"])


def test_probe_refused_recipients_against_serve(serve):
    # An unknown local user and a relay attempt: both refused, exit 1.
    cp = run_smtpkit("probe", "-a", "--from", "someone@remote.test", "--rcpt",
                     "nobody@example.test", "--rcpt", "victim@elsewhere.test",
                     f"{serve.host}:{serve.port}")
    out, err = text(cp)
    assert cp.returncode == 1, out + err
    assert "RCPT TO:<nobody@example.test> -> 550 5.1.1" in out
    assert "RCPT TO:<victim@elsewhere.test> -> 550 5.7.1" in out


def test_send_into_serve_maildir(serve):
    cp = run_smtpkit("send", "-v", "--server", f"{serve.host}:{serve.port}", "--from",
                     "Zoë <zoe@remote.test>", "--to", "alice@example.test", "--to",
                     "bob@example.test", "--subject", "über smtpkit",
                     "--body", "hello\n.leading dot\n")
    out, err = text(cp)
    assert cp.returncode == 0, out + err
    for box in ("alice", "bob"):
        msgs = serve.messages(box)
        assert len(msgs) == 1
        assert b"Subject: =?UTF-8?B?" in msgs[0]
        assert b"\r\n\r\nhello\r\n.leading dot\r\n" in msgs[0]


def test_send_bdat_into_serve(serve):
    cp = run_smtpkit("probe", "--json", "-a", f"{serve.host}:{serve.port}")
    caps = {c["keyword"] for c in json.loads(text(cp)[0])["probes"][0]["capabilities"]}
    if "CHUNKING" not in caps:
        pytest.skip("this server does not offer CHUNKING")
    cp = run_smtpkit("send", "-v", "--bdat", "--server", f"{serve.host}:{serve.port}", "--from",
                     "a@remote.test", "--to", "alice@example.test", "--body", "via BDAT\n")
    out, err = text(cp)
    assert cp.returncode == 0, out + err
    assert "C: BDAT " in out
    assert b"via BDAT\r\n" in serve.messages("alice")[0]
