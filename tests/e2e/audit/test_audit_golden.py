"""Golden output: the text report of `smtpkit audit` against the broken
server, byte for byte once the port, the date and the timings are
normalised. Regenerate with SMTPKIT_GOLDEN_UPDATE=1 after a deliberate
change, and read the diff."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from brokensmtp import BrokenServer

GOLDEN = Path(__file__).resolve().parent / "golden"
CHECKS = "greeting,helo,rcpt-before-mail,data-before-mail,bare-lf-command,open-relay," \
    "starttls-reset,data-end,enhanced-codes"


def normalise(text, port):
    text = text.replace(f"127.0.0.1:{port}", "127.0.0.1:PORT")
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, [0-9.]+ s", "DATE, N s", text)
    text = re.sub(r"in \d+ ms", "in N ms", text)
    return text


@pytest.mark.parametrize("fmt", ["text"])
def test_golden_text_report(smtpkit_bin, fmt):
    srv = BrokenServer().start()
    try:
        r = subprocess.run([smtpkit_bin, "audit", "--rate", "100", "--timeout", "5", "--helo",
                            "client.test", "--only", CHECKS, f"127.0.0.1:{srv.port}"],
                           capture_output=True, timeout=60)
    finally:
        srv.stop()
    assert r.returncode == 2, r.stderr
    got = normalise(r.stdout.decode(), srv.port)
    path = GOLDEN / f"broken_{fmt}.txt"
    if os.environ.get("SMTPKIT_GOLDEN_UPDATE"):
        path.write_text(got)
    assert got == path.read_text()
