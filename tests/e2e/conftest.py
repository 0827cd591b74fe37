"""Shared fixtures for the end-to-end tests: the real `smtpkit` binary and a
factory that starts `smtpkit serve` on a free loopback port.

    def test_something(server):
        srv = server()                                  # default tables, see below
        with smtplib.SMTP(srv.host, srv.port) as s:
            s.sendmail("a@x.test", ["alice@example.test"], b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        assert len(srv.messages("alice")) == 1
        assert srv.stop() == 0                          # SIGTERM, wait, exit status

server(...) keyword arguments (all optional):
    domains       list of local domains           (default ["example.test"])
    mailboxes     {address: maildir relative to the mail root}
                  (default alice@ and bob@example.test -> "alice", "bob")
    aliases       {address: [targets]}            (default postmaster@ -> alice@)
    limits        {name: value} merged into the limits group (see smtpkit.conf(5));
                  the fixture's own defaults: command_timeout and data_timeout
                  30, shutdown_grace 10
    listener      raw settings added to the 127.0.0.1 listener group,
                  e.g. 'starttls = true; auth = true;'
    extra         raw configuration text appended to the file
    mail_root     directory for the mailboxes     (default tmp_path/"mail")
    listen_v6     also listen on [::1] (same port)
    start         False: only write the file (srv.conf_path) and return

The object returned has host, port, mail_root (Path), conf_path, log_path,
proc, and helpers: maildir(name), messages(name) (each file in new/,
sorted by name, in its RFC 822 form: the files have LF line ends, checked
to hold no CRLF, and come back with CRLF), raw_messages(name) (the files'
bytes), files(name, sub), log() (text), wait_log(regex),
write_config(**kw) (rewrite the file, e.g. before SIGHUP), send_signal(sig),
stop(sig=SIGTERM) -> exit status, raw() -> RawSession (send exact bytes,
read replies: cmd("EHLO x") -> (code, lines)).

When the tests run as root (CI), the server is configured with
user = "nobody" and drops to it, so the temporary directories are made
traversable; otherwise `user` is the current user.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from e2e_paths import open_path_for  # noqa: F401 (used below and by helpers)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 10.0
STOP_TIMEOUT = 20.0


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """As root, give this session a base directory of its own.

    The servers under test run as `nobody` and must traverse the test's
    directories (open_path_for). pytest's default base, /tmp/pytest-of-root,
    is shared by every session of the user, and each session that starts
    resets it to mode 0700: a server of this session would lose its
    Maildirs in the middle of a test (451 at the end of data) whenever a
    test run of another checkout, or a second invocation, started. A
    directory made here is touched by no other session. An explicit
    --basetemp is left alone."""
    if os.geteuid() != 0 or config.option.basetemp:
        return
    base = tempfile.mkdtemp(prefix="smtpkit-e2e-")
    config.option.basetemp = base
    config._smtpkit_basetemp = base


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's own base directory when every test passed; keep
    it (and say where) for a look at the failures otherwise."""
    base = getattr(session.config, "_smtpkit_basetemp", None)
    if not base:
        return
    if exitstatus == 0:
        shutil.rmtree(base, ignore_errors=True)
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"e2e test directories kept in {base}")


@pytest.fixture(scope="session")
def smtpkit_bin():
    """Path of the smtpkit program under test (SMTPKIT_BIN, as `make e2e` sets)."""
    path = os.environ.get("SMTPKIT_BIN") or str(REPO / "build" / "release" / "smtpkit")
    if not os.access(path, os.X_OK):
        pytest.fail(f"smtpkit binary not found at {path}: run `make e2e` or set SMTPKIT_BIN")
    return path


def free_port(v6=False):
    """A TCP port free on 127.0.0.1 (and on ::1 when v6)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not v6:
            return port
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.bind(("::1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def run_as_user():
    """The account the server should run as in tests."""
    if os.geteuid() == 0:
        return "nobody"
    return pwd.getpwuid(os.geteuid()).pw_name


def read_reply(sock_file):
    """Read one (possibly multi-line) SMTP reply from a socket file; returns
    (code, [lines]) or (None, []) at EOF."""
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            return None, lines
        text = line.rstrip(b"\r\n")
        lines.append(text.decode("latin-1"))
        if len(text) < 4 or text[3:4] != b"-":
            try:
                return int(text[:3]), lines
            except ValueError:
                raise AssertionError(f"not an SMTP reply: {lines!r}")


class RawSession:
    """A raw SMTP dialogue over a socket: send exact bytes, read replies."""

    def __init__(self, host, port, timeout=10, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.file = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """(code, lines) of the next reply; (None, []) at EOF."""
        return read_reply(self.file)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line)
        return self.reply()

    def at_eof(self, timeout=5):
        """True if the server closed the connection (nothing more to read)."""
        self.sock.settimeout(timeout)
        try:
            return self.file.read(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Server:
    def __init__(self, binary, tmp_path, index=0, **kw):
        self.binary = binary
        self.tmp_path = tmp_path
        self.host = "127.0.0.1"
        self.proc = None
        self.kw = kw
        self.listen_v6 = kw.get("listen_v6", False)
        self.port = free_port(self.listen_v6)
        sfx = f"-{index + 1}" if index else ""  # a second server in one test
        self.mail_root = Path(kw.get("mail_root") or tmp_path / f"mail{sfx}")
        self.conf_path = tmp_path / f"smtpkit{sfx}.conf"
        self.log_path = tmp_path / f"smtpkit{sfx}.log"
        self.user = run_as_user()
        open_path_for(tmp_path)
        self.write_config(**kw)

    # -- configuration -------------------------------------------------
    def write_config(self, domains=None, mailboxes=None, aliases=None, limits=None, extra="",
                     listener="", **_ignored):
        domains = ["example.test"] if domains is None else domains
        if mailboxes is None:
            mailboxes = {"alice@example.test": "alice", "bob@example.test": "bob"}
        if aliases is None:
            aliases = {"postmaster@example.test": ["alice@example.test"]}
        lim = {"command_timeout": 30, "data_timeout": 30, "shutdown_grace": 10}
        lim.update(limits or {})

        def q(s):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        out = [
            'server_name = "mx.example.test";',
            f"user = {q(self.user)};",
            f"mail_root = {q(str(self.mail_root))};",
            "limits = { " + " ".join(f"{k} = {v};" for k, v in lim.items()) + " };",
            "listeners = (",
            f'  {{ address = "127.0.0.1"; port = {self.port}; {listener} }}'
            + (f',\n  {{ address = "::1"; port = {self.port}; }}' if self.listen_v6 else ""),
            ");",
            "domains = [ " + ", ".join(q(d) for d in domains) + " ];",
        ]
        if mailboxes:
            out.append("mailboxes = (")
            out.append(",\n".join(f"  {{ address = {q(a)}; maildir = {q(m)}; }}"
                                  for a, m in mailboxes.items()))
            out.append(");")
        if aliases:
            out.append("aliases = (")
            out.append(",\n".join(
                f"  {{ address = {q(a)}; to = [ {', '.join(q(t) for t in ts)} ]; }}"
                for a, ts in aliases.items()))
            out.append(");")
        out.append(extra)
        self.conf_path.write_text("\n".join(out) + "\n")
        os.chmod(self.conf_path, 0o644)

    # -- process -------------------------------------------------------
    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "-c", str(self.conf_path)],
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smtpkit serve exited with {self.proc.returncode}:\n"
                                   + self.log())
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s, \
                        s.makefile("rb") as f:
                    code, lines = read_reply(f)
                    if code == 220:
                        s.sendall(b"QUIT\r\n")
                        read_reply(f)
                        break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            self.kill()
            raise RuntimeError("smtpkit serve did not greet in time:\n" + self.log())
        # the probe connection is gone before the test starts counting
        self.wait_log(r"event=disconnect conn=1 ")
        return self

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send sig, wait for the exit, return the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log_file.close()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    # -- inspection ----------------------------------------------------
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10.0, count=1):
        """Wait until regex matches `count` times in the log; returns the matches."""
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            found = pat.findall(self.log())
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"log never matched {regex!r} x{count}:\n" + self.log())
            time.sleep(0.05)

    def maildir(self, name):
        return self.mail_root / name

    def files(self, name, sub="new"):
        d = self.maildir(name) / sub
        if not d.is_dir():
            return []
        return sorted(p for p in d.iterdir() if p.is_file())

    def raw_messages(self, name):
        """The bytes of each file in new/ (LF line ends)."""
        return [p.read_bytes() for p in self.files(name, "new")]

    def messages(self, name):
        """Each message in new/ in its RFC 822 form, to compare with what a
        client sent: the files keep Unix line ends (LF, the Maildir
        convention), so each must hold no CRLF and every LF reads as CRLF."""
        out = []
        for raw in self.raw_messages(name):
            assert b"\r\n" not in raw, "a stored file with CRLF line ends"
            out.append(raw.replace(b"\n", b"\r\n"))
        return out

    def raw(self, timeout=10, greet=True):
        """A RawSession; by default the 220 greeting is already read."""
        r = RawSession(self.host, self.port, timeout)
        if greet:
            code, lines = r.reply()
            assert code == 220, lines
        return r


SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: ")


@pytest.fixture
def server(smtpkit_bin, tmp_path):
    """Factory: server(**kw) starts smtpkit serve (see the module docstring)."""
    started = []

    def make(start=True, **kw):
        srv = Server(smtpkit_bin, tmp_path, index=len(started), **kw)
        started.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in started:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                srv.kill()
        if getattr(srv, "log_file", None):
            srv.log_file.close()
    # Under the sanitizer build (make SAN=1 e2e) a memory error, undefined
    # behaviour or a leak at exit is written to the server's stderr: fail.
    for srv in started:
        m = SANITIZER_REPORT.search(srv.log())
        if m:
            pytest.fail("sanitizer report in the server log:\n" + srv.log()[m.start():][:4000])
