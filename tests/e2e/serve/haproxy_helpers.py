"""A private HAProxy (the Debian package) for the end-to-end tests: its own
configuration in a temporary directory, run in the foreground (`-db`) in TCP
mode, each frontend on a free loopback port forwarding to one backend, or
balancing over several, with `send-proxy` (PROXY v1) or `send-proxy-v2`.

    with HAProxy(tmp_path, {"v1": ("127.0.0.1", port, "send-proxy")}) as hp:
        hp.port("v1")   # where clients connect

    # two backends, health-checked, a refused connection tried on the other
    with HAProxy(tmp_path, {"mx": [("127.0.0.1", p1, "send-proxy-v2"),
                                   ("127.0.0.1", p2, "send-proxy-v2")]},
                 check=True, balance="roundrobin") as hp:
        hp.wait_log(r"Server mx/s_mx_1 is DOWN")   # HAProxy's own state changes
"""

import re
import shutil
import subprocess
import time

from loopback import free_port, listening_ports

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class HAProxy:
    def __init__(self, tmp_path, routes, check=False, balance=None, extra=()):
        """routes: {name: (backend host, backend port, "send-proxy"|"send-proxy-v2"|"")},
        or {name: [such tuples]} for several backends, named s_NAME_1, s_NAME_2, ...
        check: health-check the backends (v2 then sends LOCAL headers) every
        500 ms, down after 2 failures.
        balance: HAProxy's algorithm for several backends ("roundrobin",
        "source", ...); a connection a backend refuses is tried again, the
        last time on another one (retries 2, option redispatch).
        extra: more lines for every listen section (a stick table, ...)."""
        self.dir = tmp_path / "haproxy"
        self.dir.mkdir(exist_ok=True)
        self.ports = {}
        lines = [
            "global",
            "  maxconn 200",
            "defaults",
            "  mode tcp",
            "  timeout connect 5s",
            "  timeout client 60s",
            "  timeout server 60s",
        ]
        for name, backends in routes.items():
            self.ports[name] = free_port()
            lines += [f"listen {name}", f"  bind 127.0.0.1:{self.ports[name]}"]
            if isinstance(backends, tuple):
                backends = [(f"s_{name}",) + backends]
            else:
                lines += [f"  balance {balance or 'roundrobin'}",
                          "  retries 2",
                          "  option redispatch"]
                backends = [(f"s_{name}_{i}",) + b for i, b in enumerate(backends, 1)]
            lines += [f"  {x}" for x in extra]
            for sname, host, port, send in backends:
                lines.append(f"  server {sname} {host}:{port} {send}"
                             + (" check inter 500ms fall 2 rise 2" if check else ""))
        self.cfg = self.dir / "haproxy.cfg"
        self.cfg.write_text("\n".join(lines) + "\n")
        self.log_path = self.dir / "haproxy.log"
        self.proc = None

    def port(self, name):
        return self.ports[name]

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([HAPROXY, "-f", str(self.cfg), "-db"],
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        pending = set(self.ports.values())
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited:\n" + self.log_path.read_text())
            # listening sockets, read from the kernel: a probe connection
            # would reach the server under test and skew its counters
            pending -= listening_ports()
            time.sleep(0.05)
        if pending:
            self.stop()
            raise RuntimeError("haproxy did not listen in time:\n" + self.log_path.read_text())
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10.0):
        """Wait until regex matches HAProxy's output (its state changes, such
        as "Server mx/s_mx_1 is DOWN", are written there); returns the match."""
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            m = pat.search(self.log())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"haproxy never logged {regex!r}:\n" + self.log())
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "log_file", None):
            self.log_file.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
