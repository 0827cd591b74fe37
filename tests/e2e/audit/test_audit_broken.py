"""`smtpkit audit` against a deliberately broken server (brokensmtp.py):
it reports each deviation with the RFC section and exits 2, and it
delivers nothing, even though the server answers DATA with 354 anywhere."""

import subprocess

import pytest
from brokensmtp import BrokenServer


@pytest.fixture
def broken():
    srv = BrokenServer().start()
    yield srv
    srv.stop()


def test_broken_server_findings(broken, audit):
    code, report, err = audit(f"127.0.0.1:{broken.port}")
    assert code == 2, err
    res = {c["name"]: c for c in report["checks"]}
    expected = {
        # wrong codes
        "rcpt-before-mail": ("MUST", "503"),
        "data-before-mail": ("MUST", "503 or 554"),
        "unknown-command": ("SHOULD", "500"),
        "helo": ("MUST", "at most 1 line"),
        "ehlo-no-domain": ("SHOULD", "501"),
        "nested-mail": ("SHOULD", "503"),
        "mail-unknown-parameter": ("SHOULD", "555"),
        "size-declared": ("SHOULD", "552"),
        # accepting everything
        "open-relay": ("SHOULD", None),
        # lines ended at a bare LF
        "bare-lf-command": ("MUST", "exactly 2 replies"),
        # offers ENHANCEDSTATUSCODES, sends none
        "enhanced-codes": ("MUST", "enhanced code"),
    }
    for name, (sev, allowed) in expected.items():
        c = res[name]
        assert c["outcome"] == "FAIL", (name, c)
        assert c["severity"] == sev, (name, c)
        assert c["rfc"].startswith("RFC "), c
        assert c["dialogue"], c
        if allowed:
            assert allowed in c["allowed"], (name, c["allowed"])
    # the dialogue shows the exchange: RCPT before MAIL got 250
    lines = [d["line"] for d in res["rcpt-before-mail"]["dialogue"]]
    assert "RCPT TO:<postmaster>" in lines and "250 OK" in lines
    # the broken lines are shown with the bare LF visible
    assert any("NOOP<LF>NOOP" in d["line"] for d in res["bare-lf-command"]["dialogue"])
    # the 354 to a DATA without MAIL was not followed by data: the audit
    # dropped the connection, the server saw no message end
    dlg = [d["line"] for d in res["data-before-mail"]["dialogue"]]
    assert any(l.startswith("354") for l in dlg)
    assert any("closing without ending the data" in l for l in dlg)
    assert broken.completed_messages == 0
    assert report["summary"]["must"]["fail"] >= 5
    assert report["exit"] == 2


def test_broken_server_text_report(broken, smtpkit_bin):
    r = subprocess.run([smtpkit_bin, "audit", "--rate", "100", "--timeout", "5",
                        "--only", "rcpt-before-mail,bare-lf-command,noop",
                        f"127.0.0.1:{broken.port}"], capture_output=True, timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 2
    lines = out.splitlines()
    assert any(l.startswith("FAIL  MUST    rcpt-before-mail") and "RFC 5321 3.3" in l
               for l in lines), out
    assert any(l.startswith("PASS  MUST    noop") for l in lines), out
    assert "Failures:" in out
    assert "  allowed:  503" in out
    assert "    C: RCPT TO:<postmaster>" in out and "    S: 250 OK" in out
    assert "Result: MUST failures (exit 2)" in out
    assert len([l for l in lines if l[:6] in ("PASS  ", "FAIL  ", "SKIP  ")]) == 3


def test_could_not_run_exit_status(audit):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    code, report, err = audit(f"127.0.0.1:{port}")
    assert code == 3
    assert report["could_not_run"] and "could not connect" in report["error"]
    assert all(c["outcome"] == "SKIP" for c in report["checks"])


def test_usage_errors(smtpkit_bin):
    for args in (["--only", "no-such-check", "127.0.0.1:25"], ["--rate", "0", "x"], []):
        r = subprocess.run([smtpkit_bin, "audit", *args], capture_output=True, timeout=30)
        assert r.returncode == 5, (args, r.stderr)
