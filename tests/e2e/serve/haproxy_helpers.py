"""A private HAProxy (the Debian package) for the end-to-end tests: its own
configuration in a temporary directory, run in the foreground (`-db`) in TCP
mode, each frontend on a free loopback port forwarding to one backend with
`send-proxy` (PROXY v1) or `send-proxy-v2`.

    with HAProxy(tmp_path, {"v1": ("127.0.0.1", port, "send-proxy")}) as hp:
        hp.port("v1")   # where clients connect
"""

import shutil
import subprocess
import time

from loopback import free_port, listening_ports

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class HAProxy:
    def __init__(self, tmp_path, routes, check=False):
        """routes: {name: (backend host, backend port, "send-proxy"|"send-proxy-v2"|"")}.
        check: health-check the backends (v2 then sends LOCAL headers)."""
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
        for name, (host, port, send) in routes.items():
            self.ports[name] = free_port()
            lines += [
                f"listen {name}",
                f"  bind 127.0.0.1:{self.ports[name]}",
                f"  server s_{name} {host}:{port} {send}" + (" check inter 500ms" if check else ""),
            ]
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
