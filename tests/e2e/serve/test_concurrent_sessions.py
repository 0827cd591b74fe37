"""Test runs of other checkouts on the same machine do not reach into this
one. As root the servers under test run as `nobody` and must traverse the
test's directories; pytest resets its shared base directory
(/tmp/pytest-of-root) to mode 0700 whenever any session starts, which cut a
server started before off from its Maildirs in the middle of a test: 451
4.3.0 at the end of data (logged as event=store-error step=maildir-create
errno=13 "Permission denied"), seen only in whole-suite runs on a busy
machine. Each session has its own base directory (tests/e2e/conftest.py)."""

import os
import subprocess
import sys

import pytest

OTHER_TEST = """\
def test_uses_tmp_path(tmp_path):
    (tmp_path / "f").write_text("x")
"""


def send(srv):
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: between sessions\r\n\r\nbody\r\n.\r\n")
        code, lines = r.reply()
        assert r.cmd("QUIT")[0] == 221
    return code, lines


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="as another user the server runs as that user: nothing to cut off")
def test_another_pytest_session_does_not_cut_the_server_off(server, tmp_path):
    srv = server()
    assert send(srv)[0] == 250
    # An unrelated pytest session starts, as another checkout's run would:
    # default temporary directories, no options of ours.
    other = tmp_path / "other-session"
    other.mkdir()
    (other / "test_other.py").write_text(OTHER_TEST)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST_") and k != "TMPDIR"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(other), str(other / "test_other.py")],
                       cwd=other, env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    # the server still reaches its Maildir
    code, lines = send(srv)
    assert code == 250, (lines, [ln for ln in srv.log().splitlines() if "store-error" in ln])
    assert len(srv.messages("alice")) == 2
    assert "event=store-error" not in srv.log()
