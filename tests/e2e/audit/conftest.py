"""Fixtures for the `smtpkit audit` end-to-end tests: the TLS server factory
of tests/e2e/tls (the three listeners of the sample configuration: MX with
STARTTLS and AUTH, submission, implicit TLS), a deliberately broken SMTP
server, and a helper that runs the audit and parses its JSON report."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TLS_DIR = HERE.parent / "tls"
sys.path.insert(0, str(TLS_DIR))
_spec = importlib.util.spec_from_file_location("tls_conftest", TLS_DIR / "conftest.py")
_tls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tls)
tls_server = _tls.tls_server  # re-exported fixture

from tls_helpers import USERS  # noqa: E402

AUDIT_TIMEOUT = 120


def run_audit(smtpkit_bin, target, *args, env=None, timeout=AUDIT_TIMEOUT):
    """Run `smtpkit audit --json TARGET ARGS...`; returns (exit, report dict,
    stderr). A fast --rate: the targets are on loopback."""
    cmd = [smtpkit_bin, "audit", "--json", "--rate", "100", "--timeout", "5",
           "--helo", "client.test", *args, target]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    try:
        report = json.loads(r.stdout.decode())
    except ValueError:
        raise AssertionError(f"not JSON (exit {r.returncode}): {r.stdout[:2000]!r} "
                             f"{r.stderr[:2000]!r}")
    return r.returncode, report, r.stderr.decode(errors="replace")


def outcomes(report):
    """{check name: outcome}"""
    return {c["name"]: c["outcome"] for c in report["checks"]}


def failures(report, severities=("MUST", "SHOULD")):
    return {c["name"]: c for c in report["checks"]
            if c["outcome"] == "FAIL" and c["severity"] in severities}


@pytest.fixture
def audit(smtpkit_bin):
    def run(target, *args, **kw):
        return run_audit(smtpkit_bin, target, *args, **kw)
    return run


@pytest.fixture
def alice():
    user = "alice@example.test"
    return user, USERS[user][0]
