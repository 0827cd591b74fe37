"""Log destinations other than stderr: a log file that SIGUSR1 reopens
after a rotation (rename the file, signal, new lines go to a new file by
the old name; a reopen that fails keeps the old file), and log = "journal"
with one journal field per key=value, received on a journald socket of
our own in a private mount namespace."""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopback import read_reply


def wait_for(path, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in Path(path).read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    content = Path(path).read_text(errors="replace") if Path(path).exists() else "(no file)"
    raise AssertionError(f"{text!r} never appeared in {path}:\n{content}")


def start_logging_to(server, log, own_dir=False):
    """The server with log = <file>: its lines go there, not to the
    fixture's stderr capture, so it is started and awaited here. own_dir:
    the log's directory belongs to the server's user (as logrotate's
    `create` would arrange for the file)."""
    srv = server(start=False, extra=f'log = "{log}";')
    if own_dir and os.geteuid() == 0:
        user = pwd.getpwnam(srv.user)
        os.chown(log.parent, user.pw_uid, user.pw_gid)
    srv.log_file = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen([srv.binary, "serve", "-c", str(srv.conf_path)],
                                stdout=srv.log_file, stderr=subprocess.STDOUT)
    wait_for(log, "event=start ")
    return srv


def connect_quit(srv):
    with socket.create_connection((srv.host, srv.port), timeout=5) as s, s.makefile("rb") as f:
        assert read_reply(f)[0] == 220
        s.sendall(b"QUIT\r\n")
        assert read_reply(f)[0] == 221


def test_sigusr1_reopens_the_log_file(server, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "smtpkit.log"
    srv = start_logging_to(server, log, own_dir=True)
    connect_quit(srv)
    wait_for(log, "event=disconnect conn=1 ")
    assert srv.log() == ""  # nothing on stderr

    # logrotate: rename, then SIGUSR1
    rotated = logs / "smtpkit.log.1"
    log.rename(rotated)
    connect_quit(srv)
    wait_for(rotated, "event=disconnect conn=2 ")  # still the open file
    srv.send_signal(signal.SIGUSR1)
    wait_for(log, "event=log-reopened file=" + str(log))
    connect_quit(srv)
    wait_for(log, "event=disconnect conn=3 ")
    assert "conn=3 " not in rotated.read_text()
    assert "event=log-reopened" not in rotated.read_text()
    assert srv.stop() == 0
    assert "event=stop " in log.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a directory the server user cannot write")
def test_failed_reopen_keeps_the_old_file(server, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)  # root's: the dropped server cannot create a file here
    log = logs / "smtpkit.log"
    srv = start_logging_to(server, log)
    rotated = logs / "smtpkit.log.1"
    log.rename(rotated)
    srv.send_signal(signal.SIGUSR1)
    wait_for(rotated, "event=log-reopen-failed error=")
    assert not log.exists()
    connect_quit(srv)
    wait_for(rotated, "event=disconnect conn=1 ")
    assert srv.stop() == 0


def test_log_file_config_errors(smtpkit_bin, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text('mail_root = "m";\nlisteners = ( { address = "127.0.0.1"; port = 2525; } );\n'
                    'log = "smtpkit.log";\n')
    r = subprocess.run([smtpkit_bin, "serve", "-c", str(conf), "--check"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert f"{conf}:3: log = \"smtpkit.log\": use \"stderr\" or \"syslog\" (or \"journal\", " \
        "or a file path" in r.stderr, r.stderr


# ---- journald ------------------------------------------------------------------

# Runs in a private mount namespace (unshare -m): a tmpfs over /run/systemd
# with our own socket where journald's would be, so nothing of the host is
# touched. Starts the server, makes one connection, stops it, and prints
# every datagram received as a JSON list of {field: value}.
JOURNAL_HELPER = r'''
import json, os, socket, subprocess, sys, time
binary, conf, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], check=True)
os.mkdir("/run/systemd/journal")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
os.chmod("/run/systemd/journal/socket", 0o666)
proc = subprocess.Popen([binary, "serve", "-c", conf], stderr=sys.stderr)
entries = []
def collect(until, timeout=10):
    sock.settimeout(0.2)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        fields = {}
        for line in data.decode().split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        entries.append(fields)
        if until(fields):
            return
    raise SystemExit("timed out; got %r" % entries)
collect(lambda f: f.get("SMTPKIT_EVENT") == "start")
s = socket.create_connection(("127.0.0.1", port), timeout=5)
f = s.makefile("rb")
f.readline()
s.sendall(b"HELO client.test\r\nQUIT\r\n")
f.readline(); f.readline()
s.close()
collect(lambda f: f.get("SMTPKIT_EVENT") == "disconnect")
proc.terminate()
proc.wait(timeout=20)
collect(lambda f: f.get("SMTPKIT_EVENT") == "stop")
print(json.dumps(entries))
'''


def built_with_libsystemd(smtpkit_bin, tmp_path):
    conf = tmp_path / "j.conf"
    conf.write_text('mail_root = "m";\nlisteners = ( { address = "127.0.0.1"; port = 2525; } );\n'
                    'log = "journal";\n')
    r = subprocess.run([smtpkit_bin, "serve", "-c", str(conf), "--check"],
                       capture_output=True, text=True, timeout=20)
    if "built without libsystemd" in r.stderr:
        assert r.returncode == 1 and f"{conf}:3: log = \"journal\"" in r.stderr
        return False
    return True


def test_journal_gets_one_field_per_key(server, smtpkit_bin, tmp_path):
    if not built_with_libsystemd(smtpkit_bin, tmp_path):
        pytest.skip("built without libsystemd: log = \"journal\" is refused (checked)")
    if os.geteuid() != 0 or not shutil.which("unshare") or not os.path.isdir("/run/systemd"):
        pytest.skip("needs root, unshare(1) and /run/systemd for a private journal socket")
    srv = server(start=False, extra='log = "journal";')
    helper = tmp_path / "journal_helper.py"
    helper.write_text(JOURNAL_HELPER)
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, str(helper),
                        srv.binary, str(srv.conf_path), str(srv.port)],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    entries = json.loads(r.stdout)
    by_event = {}
    for e in entries:
        by_event.setdefault(e.get("SMTPKIT_EVENT"), []).append(e)
    start = by_event["start"][0]
    assert start["SYSLOG_IDENTIFIER"] == "smtpkit"
    assert start["PRIORITY"] == "6"  # LOG_INFO
    assert start["MESSAGE"].startswith("event=start version=")
    connect = by_event["connect"][0]
    assert connect["SMTPKIT_CONN"] == "1" and connect["SMTPKIT_PEER"] == "127.0.0.1"
    assert connect["SMTPKIT_LISTENER"] == f"127.0.0.1:{srv.port}"
    helo = by_event["helo"][0]
    assert helo["SMTPKIT_HELO"] == "client.test"
    disc = by_event["disconnect"][0]
    assert disc["SMTPKIT_REASON"] == "quit" and disc["SMTPKIT_LAST_REPLY"] == "221"
    assert "stop" in by_event
    assert srv.log() == ""  # nothing went to stderr
