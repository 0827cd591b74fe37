"""`smtpkit audit` against independent servers started on loopback:
aiosmtpd (python3-aiosmtpd) and a private Postfix instance. Each test pins
what the audit finds there, and why it is right per the RFC text:

aiosmtpd 1.4.3:
  - HELP answered 250, not 211/214 (RFC 5321 4.1.1.8, 4.3.2);
  - a bare LF ends a command line: "NOOP<LF>NOOP" gets two replies
    (RFC 5321 2.3.8: only CRLF ends a line);
  - a bare CR is echoed back inside a reply ('500 ... "NOOP<CR>NOOP"'),
    which breaks the reply grammar (RFC 5321 4.2: textstring has no CR);
  - the Sink handler accepts any recipient: an open relay (3.6.2).
Postfix 3.7:
  - a bare LF ends a command line, and <LF>.<CRLF>, <CRLF>.<LF>, <LF>.<LF>
    end the data (SMTP smuggling; RFC 5321 2.3.8, 4.1.1.4);
  - relaying is refused with 454 4.7.1 (defer_unauth_destination), not the
    550 RFC 5321 3.6.2 asks for, and 454 is not a RCPT reply in 4.3.2;
  - MAIL FROM:<audit@@example.com> is accepted (4.1.2 syntax);
  - HELP and EXPN are "500 command not recognized" (4.1.1.8 and 3.5.2:
    servers SHOULD support both);
  - MAIL before HELO/EHLO is accepted (best practice only).
"""

import socket
import threading

import pytest
from postfixinstance import PostfixInstance, postfix_available


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fails(report):
    return {c["name"]: c for c in report["checks"] if c["outcome"] == "FAIL"}


@pytest.fixture
def aiosmtpd_server():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink
    port = free_port()
    c = Controller(Sink(), hostname="127.0.0.1", port=port)
    c.start()
    yield port
    c.stop()


def test_aiosmtpd(aiosmtpd_server, audit):
    code, report, err = audit(f"127.0.0.1:{aiosmtpd_server}", "--deliver-to",
                              "someone@example.test")
    assert code == 2, err
    f = fails(report)
    assert "250 Supported commands" in f["help"]["reason"]
    assert "3 replies where 2 were due" in f["bare-lf-command"]["reason"]
    assert "bare CR inside the line" in " ".join(
        d["line"] for d in f["reply-grammar"]["dialogue"])
    assert f["open-relay"]["severity"] == "SHOULD"
    res = {c["name"]: c["outcome"] for c in report["checks"]}
    # what aiosmtpd gets right
    for name in ("greeting", "ehlo", "rcpt-before-mail", "data-before-mail", "quit",
                 "data-end", "smuggling-lf-dot-crlf", "smuggling-crlf-dot-lf",
                 "smuggling-lf-dot-lf", "smuggling-cr-dot-cr", "postmaster", "smtputf8",
                 "8bitmime", "size-declared"):
        assert res[name] == "PASS", (name, report)
    must = {n for n, c in f.items() if c["severity"] == "MUST"}
    assert must == {"bare-lf-command", "reply-grammar"}, must


@pytest.mark.skipif(not postfix_available(), reason="needs root and Debian's postfix")
def test_postfix(tmp_path, audit):
    pf = PostfixInstance(tmp_path).start()
    try:
        code, report, err = audit(f"127.0.0.1:{pf.port}", "--deliver-to",
                                  "postmaster@postfix.test")
    finally:
        pf.stop()
    assert code == 2, err
    f = fails(report)
    must = {n for n, c in f.items() if c["severity"] == "MUST"}
    assert must == {"bare-lf-command", "smuggling-lf-dot-crlf", "smuggling-crlf-dot-lf",
                    "smuggling-lf-dot-lf"}, must
    assert "454 4.7.1" in f["relay-refusal-code"]["reason"]
    assert "454 is not a reply to RCPT" in " ".join(
        d["line"] for d in f["reply-codes-listed"]["dialogue"])
    assert "250 2.1.0" in f["mail-syntax"]["reason"]
    assert "500 5.5.2" in f["help"]["reason"] and "500 5.5.2" in f["expn"]["reason"]
    assert f["mail-before-ehlo"]["severity"] == "best practice"
    res = {c["name"]: c["outcome"] for c in report["checks"]}
    for name in ("open-relay", "rcpt-before-mail", "starttls-injection", "starttls-reset",
                 "starttls-ehlo-after", "pipelining", "enhanced-codes", "size-enforced",
                 "data-end", "smuggling-cr-dot-cr", "postmaster"):
        assert res[name] == "PASS", (name, report)
