"""The server's life: command line (--help, --check, bad files), privilege
drop when started as root, IPv4 and IPv6 listeners, SIGTERM (421 4.3.2 to
idle sessions, messages in progress finish, exit 0), SIGHUP (new tables
without dropping sessions; a bad file keeps the old ones), and the log."""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from serve_helpers import split_trace

REPO = Path(__file__).resolve().parents[3]
MSG = b"Subject: lifecycle\r\n\r\nhello\r\n"


def run(binary, *args, timeout=20):
    return subprocess.run([binary, *args], capture_output=True, timeout=timeout)


def test_help(smtpkit_bin):
    r = run(smtpkit_bin, "serve", "--help")
    assert r.returncode == 0
    assert b"usage: smtpkit serve" in r.stdout and b"--check" in r.stdout


def test_unknown_option_is_usage_error(smtpkit_bin):
    r = run(smtpkit_bin, "serve", "--frobnicate")
    assert r.returncode == 2
    assert b"unknown option '--frobnicate'" in r.stderr


def test_check_sample_configuration(smtpkit_bin):
    r = run(smtpkit_bin, "serve", "--check", "-c", str(REPO / "etc" / "smtpkit.conf"))
    assert r.returncode == 0, r.stderr
    assert b"OK: 4 listener(s), 1 domain(s), 2 mailbox(es), 1 alias(es)" in r.stdout
    assert (str(REPO / "var" / "mail")).encode() in r.stdout


def test_check_reports_file_and_line(smtpkit_bin, server):
    srv = server(start=False, limits={"recipients": 50})
    r = run(smtpkit_bin, "serve", "--check", "-c", str(srv.conf_path))
    assert r.returncode == 1
    text = r.stderr.decode()
    line = next(i for i, l in enumerate(srv.conf_path.read_text().splitlines(), 1)
                if "recipients = 50" in l)
    assert f"{srv.conf_path}:{line}: 'recipients' = 50 is out of range (100.." in text
    # the same error stops `serve` itself, before it listens
    r = run(smtpkit_bin, "serve", "-c", str(srv.conf_path))
    assert r.returncode == 1 and b"'recipients' = 50" in r.stderr


def test_check_missing_file(smtpkit_bin, tmp_path):
    r = run(smtpkit_bin, "serve", "--check", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode == 1
    assert b"nope.conf: cannot read" in r.stderr


def proc_ids(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
    return [int(x) for x in uids], [int(x) for x in gids], [int(x) for x in groups]


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_root_drops_to_configured_user(server):
    import pwd
    nobody = pwd.getpwnam("nobody")
    srv = server()
    uids, gids, groups = proc_ids(srv.proc.pid)
    assert uids == [nobody.pw_uid] * 4
    assert gids == [nobody.pw_gid] * 4
    assert groups == [nobody.pw_gid]
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.sendmail("c@remote.test", ["alice@example.test"], MSG)
    f = srv.files("alice")[0]
    assert f.stat().st_uid == nobody.pw_uid
    assert srv.maildir("alice").stat().st_uid == nobody.pw_uid
    srv.wait_log(r"event=start .*user=nobody")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
def test_root_without_user_refuses_to_start(smtpkit_bin, server):
    srv = server(start=False)
    text = srv.conf_path.read_text()
    srv.conf_path.write_text(re.sub(r'^user = .*$', "", text, flags=re.M))
    r = run(smtpkit_bin, "serve", "-c", str(srv.conf_path))
    assert r.returncode == 1
    assert b"started as root" in r.stderr and b"'user'" in r.stderr
    srv.conf_path.write_text(re.sub(r'^user = .*$', 'user = "root";', text, flags=re.M))
    r = run(smtpkit_bin, "serve", "-c", str(srv.conf_path))
    assert r.returncode == 1 and b"refusing to serve mail as root" in r.stderr


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
def test_ipv4_and_ipv6_listeners(server):
    srv = server(listen_v6=True)
    with smtplib.SMTP("::1", srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["bob@example.test"], MSG) == {}
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["bob@example.test"], MSG) == {}
    assert len(srv.messages("bob")) == 2
    srv.wait_log(r"event=connect conn=\d+ peer=::1 ")
    trace, _, _ = split_trace(srv.messages("bob")[0])
    assert b"::1" in trace or b"127.0.0.1" in trace


def test_listener_in_use_is_fatal_with_file_and_line(smtpkit_bin, server):
    first = server()
    second = server(start=False)
    text = second.conf_path.read_text().replace(f"port = {second.port};", f"port = {first.port};")
    second.conf_path.write_text(text)
    r = run(smtpkit_bin, "serve", "-c", str(second.conf_path))
    assert r.returncode == 1
    line = next(i for i, l in enumerate(text.splitlines(), 1) if f"port = {first.port}" in l)
    assert (f"{second.conf_path}:{line}: cannot listen on 127.0.0.1:{first.port}: "
            "Address already in use").encode() in r.stderr


def test_unavailable_ipv6_listener_is_only_a_warning(server):
    srv = server(start=False)
    text = srv.conf_path.read_text()
    assert "listeners = (\n" in text
    text = text.replace("listeners = (\n", "listeners = (\n"
                        f'  {{ address = "2001:db8::5"; port = {srv.port}; }},\n')
    srv.conf_path.write_text(text)
    srv.start()
    srv.wait_log(r"warning event=listen-skipped listener=\[2001:db8::5\]:\d+ ")
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.noop()[0] == 250


def test_sigterm_idle_session_gets_421_432_and_exit_0(server):
    srv = server()
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        srv.send_signal(signal.SIGTERM)
        code, lines = r.reply()
        assert code == 421 and lines[-1][4:9] == "4.3.2", lines
        assert r.at_eof()
    assert srv.proc.wait(timeout=15) == 0
    log = srv.log()
    assert "event=shutdown signal=TERM" in log
    assert re.search(r"event=disconnect conn=2 .*reason=shutdown last_reply=421", log)
    assert "event=stop" in log


def test_sigterm_lets_a_message_in_progress_finish(server):
    srv = server(limits={"shutdown_grace": 20})
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        srv.send_signal(signal.SIGTERM)
        srv.wait_log(r"event=shutdown signal=TERM conns=1")
        # no new connections once shutting down
        with pytest.raises(OSError):
            socket.create_connection((srv.host, srv.port), timeout=2).close()
        r.send(b"second half\r\n.\r\n")
        code, lines = r.reply()
        assert code == 250, lines   # the message is durable
        code, lines = r.reply()
        assert code == 421 and lines[-1][4:9] == "4.3.2", lines
        assert r.at_eof()
    assert srv.proc.wait(timeout=15) == 0
    _, rest, _ = split_trace(srv.messages("alice")[0])
    assert rest == b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"


def test_sigterm_grace_time_bounds_a_stalled_message(server):
    srv = server(limits={"shutdown_grace": 1})
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: never finished\r\n\r\n")
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        code, lines = r.reply()
        assert code == 421 and lines[-1][4:9] == "4.3.2", lines
        assert time.monotonic() - t0 < 8
    assert srv.proc.wait(timeout=15) == 0
    assert srv.files("alice", "new") == [] and srv.files("alice", "tmp") == []


def test_sigint_stops_cleanly_without_sessions(server):
    srv = server()
    assert srv.stop(signal.SIGINT) == 0
    assert "event=shutdown signal=INT" in srv.log()


def test_sighup_adds_mailbox_without_dropping_session(server):
    srv = server()
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        code, lines = r.cmd("RCPT TO:<carol@example.test>")
        assert code == 550, lines
        srv.write_config(mailboxes={"alice@example.test": "alice", "bob@example.test": "bob",
                                    "carol@example.test": "carol"})
        srv.send_signal(signal.SIGHUP)
        srv.wait_log(r"event=reload domains=1 mailboxes=3 aliases=1")
        # same session, same transaction: the new mailbox exists now
        code, lines = r.cmd("RCPT TO:<carol@example.test>")
        assert code == 250, lines
        assert r.cmd("DATA")[0] == 354
        r.send(MSG + b".\r\n")
        assert r.reply()[0] == 250
        assert r.cmd("QUIT")[0] == 221
    assert len(srv.messages("carol")) == 1
    assert srv.proc.poll() is None


def test_sighup_with_bad_file_keeps_old_tables(server):
    srv = server()
    good = srv.conf_path.read_text()
    srv.conf_path.write_text(good + "\nlimits = { recipients = 5; };\n")
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=reload-failed error=\".*smtpkit.conf:\d+: ")
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["alice@example.test"], MSG) == {}
    srv.conf_path.write_text(good.replace('"bob@example.test"', '"robert@example.test"'))
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=reload domains=1 mailboxes=2")
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("c.test")
        s.mail("c@remote.test")
        assert s.rcpt("bob@example.test")[0] == 550
        assert s.rcpt("robert@example.test")[0] == 250
    assert srv.stop() == 0


def test_log_lines_have_stable_keys(server):
    srv = server()
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.sendmail("c@remote.test", ["alice@example.test"], MSG)
    assert srv.stop() == 0
    log = srv.log()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z smtpkit\[\d+\] info "
    assert re.search(ts + r"event=connect conn=2 peer=127\.0\.0\.1 port=\d+ "
                     r"listener=127\.0\.0\.1:\d+ trusted=0 conns=1$", log, re.M)
    m = re.search(ts + r"event=disconnect conn=2 peer=127\.0\.0\.1 reason=quit last_reply=221 "
                  r"duration_ms=\d+ bytes_in=(\d+) bytes_out=(\d+) messages=1 "
                  r"failed_messages=0$", log, re.M)
    assert m and int(m.group(1)) > len(MSG) and int(m.group(2)) > 0
