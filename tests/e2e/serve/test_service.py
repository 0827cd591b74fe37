"""Running under a service manager: the sd_notify(3) protocol without
systemd (the test binds the datagram socket, sets NOTIFY_SOCKET and reads
what `smtpkit serve` says: READY=1 once the port accepts, RELOADING=1 then
READY=1 around SIGHUP, STOPPING=1 at SIGTERM), the pid file, and what
`make install` puts on a system: the commented configuration (never over
an existing one) and a systemd unit that `systemd-analyze verify` accepts
and `systemd-analyze security` rates."""

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from loopback import REPO, read_reply


def recv_notify(sock, timeout=10):
    sock.settimeout(timeout)
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n") if line)


def start_notified(server, tmp_path, extra=""):
    """smtpkit serve with NOTIFY_SOCKET pointing at a socket of ours, started
    the way a service manager would (no probe connection first)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    srv = server(start=False, extra=extra)
    env = dict(os.environ, NOTIFY_SOCKET=str(path))
    srv.log_file = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen([srv.binary, "serve", "-c", str(srv.conf_path)], env=env,
                                stdout=srv.log_file, stderr=subprocess.STDOUT)
    return srv, sock


def greets(srv):
    with socket.create_connection((srv.host, srv.port), timeout=5) as s, s.makefile("rb") as f:
        code, _ = read_reply(f)
        s.sendall(b"QUIT\r\n")
        return code == 220 and read_reply(f)[0] == 221


def test_notify_ready_reload_stopping(server, tmp_path):
    srv, sock = start_notified(server, tmp_path)
    try:
        msg = recv_notify(sock)
        # the first thing said is READY=1, and by then the port accepts
        assert msg.get("READY") == "1", msg
        assert msg.get("MAINPID") == str(srv.proc.pid), msg
        assert f"127.0.0.1:{srv.port}" in msg.get("STATUS", ""), msg
        assert greets(srv)

        srv.send_signal(signal.SIGHUP)
        msg = recv_notify(sock)
        assert msg.get("RELOADING") == "1", msg
        assert re.fullmatch(r"\d+", msg.get("MONOTONIC_USEC", "")), msg
        # MONOTONIC_USEC is CLOCK_MONOTONIC, the clock the manager compares
        assert abs(int(msg["MONOTONIC_USEC"]) - time_monotonic_usec()) < 10_000_000
        msg = recv_notify(sock)
        assert msg.get("READY") == "1", msg
        srv.wait_log(r"event=reload ")
        assert greets(srv)

        srv.send_signal(signal.SIGTERM)
        msg = recv_notify(sock)
        assert msg.get("STOPPING") == "1", msg
        assert srv.proc.wait(timeout=20) == 0
    finally:
        sock.close()
    assert "event=notify-unavailable" not in srv.log()


def time_monotonic_usec():
    import time
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)


def test_notify_socket_unusable_is_a_warning(server, tmp_path):
    srv = server(start=False)
    srv.log_file = open(srv.log_path, "ab")
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "nobody-listens.sock"))
    srv.proc = subprocess.Popen([srv.binary, "serve", "-c", str(srv.conf_path)], env=env,
                                stdout=srv.log_file, stderr=subprocess.STDOUT)
    srv.wait_log(r"event=notify-unavailable error=\"NOTIFY_SOCKET=\S+nobody-listens.sock: ")
    srv.wait_log(r"event=start ")
    assert greets(srv)


def test_pid_file(server, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    pid_file = run / "smtpkit.pid"
    pid_file.symlink_to(tmp_path / "elsewhere")  # replaced, never followed
    srv = server(extra=f'pid_file = "{pid_file}";')
    assert not pid_file.is_symlink()
    assert pid_file.read_text() == f"{srv.proc.pid}\n"
    assert not (tmp_path / "elsewhere").exists()
    # the pid file is written after the bind: a second instance that cannot
    # bind the same port leaves it alone
    second = subprocess.run([srv.binary, "serve", "-c", str(srv.conf_path)],
                            capture_output=True, text=True, timeout=20)
    assert second.returncode == 1 and "cannot listen" in second.stderr, second.stderr
    assert pid_file.read_text() == f"{srv.proc.pid}\n"
    assert srv.stop() == 0


# ---- make install --------------------------------------------------------------

def make_args():
    """Install what the tests run (SMTPKIT_BIN), without rebuilding it."""
    binary = Path(os.environ.get("SMTPKIT_BIN") or REPO / "build" / "release" / "smtpkit")
    build = binary.resolve().parent
    if build.name == "san":
        return ["SAN=1"]
    return [f"BUILD={os.path.relpath(build, REPO)}"]


def make_install(*args):
    r = subprocess.run(["make", "-s", "-C", str(REPO), "install", *make_args(), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_make_install_configuration_and_unit(tmp_path, smtpkit_bin):
    dest = tmp_path / "dest"
    r = make_install(f"DESTDIR={dest}", "PREFIX=/usr")
    conf = dest / "etc/smtpkit/smtpkit.conf"
    unit = dest / "usr/lib/systemd/system/smtpkit.service"
    assert (dest / "usr/bin/smtpkit").is_file()
    assert conf.is_file() and unit.is_file()
    assert conf.read_bytes() == (REPO / "etc/install/smtpkit.conf").read_bytes()
    text = unit.read_text()
    assert "ExecStart=/usr/bin/smtpkit serve -c /etc/smtpkit/smtpkit.conf\n" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in text
    assert "Type=notify\n" in text
    assert "@" not in re.sub(r"^#.*$|@[a-z-]+", "", text, flags=re.M)  # every @VAR@ replaced

    # an administrator's configuration survives the next install
    conf.write_text("# mine\n")
    r = make_install(f"DESTDIR={dest}", "PREFIX=/usr")
    assert conf.read_text() == "# mine\n"
    assert "keeping the existing" in r.stdout

    # the installed configuration is valid once its user exists (here: nobody)
    fresh = tmp_path / "fresh.conf"
    fresh.write_text((REPO / "etc/install/smtpkit.conf").read_text()
                     .replace('user = "smtpkit";', 'user = "nobody";'))
    chk = subprocess.run([smtpkit_bin, "serve", "-c", str(fresh), "--check"],
                         capture_output=True, text=True, timeout=20)
    assert chk.returncode == 0, chk.stdout + chk.stderr


def test_unit_passes_systemd_analyze(tmp_path):
    prefix = tmp_path / "prefix"  # a real prefix, so ExecStart= names an executable
    make_install(f"PREFIX={prefix}", f"SYSCONFDIR={prefix}/etc")
    unit = prefix / "lib/systemd/system/smtpkit.service"
    v = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout + v.stderr == "", v.stdout + v.stderr
    # the check can fail: a broken copy is reported
    bad = tmp_path / "smtpkit.service"
    bad.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    v = subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert "Failed to parse protect system value, ignoring: strictly" in v.stderr, v.stderr

    s = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60)
    out = s.stdout + s.stderr
    m = re.search(r"Overall exposure level for smtpkit.service: (\d+\.\d+)", out)
    assert m, out
    # 0 is perfect, 10 is unprotected; a root-started network daemon that
    # drops privileges itself cannot get much below 2
    assert float(m.group(1)) <= 3.0, out
    for line in ("NoNewPrivileges=", "ProtectSystem=", "ProtectHome=", "PrivateTmp=",
                 "SystemCallArchitectures=", "RestrictNamespaces=~user"):
        assert re.search(r"✓ " + re.escape(line), out), (line, out)
