"""A private rspamd (Debian's rspamd package) for the tests: the stock
configuration in /etc/rspamd with every local setting from a temporary
directory (--var LOCAL_CONFDIR=...): the proxy worker in milter mode in
front of one normal (scanning) worker and the controller, all on loopback
ports, no Redis, DNS pointed at a closed port so nothing leaves the
machine; its database, run and log directories are temporary too."""

import socket
import subprocess
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rspamd:
    START_TIMEOUT = 60.0  # it compiles its TLD list and rules at start

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path / "rspamd"
        for sub in ("override.d", "local.d", "db", "run", "log"):
            (self.dir / sub).mkdir(parents=True)
        self.port, normal, controller = free_port(), free_port(), free_port()
        o = self.dir / "override.d"
        (o / "worker-proxy.inc").write_text(
            f'bind_socket = "127.0.0.1:{self.port}";\nmilter = yes;\ntimeout = 120s;\n'
            f'upstream "local" {{ default = yes; hosts = "127.0.0.1:{normal}"; }}\ncount = 1;\n')
        (o / "worker-normal.inc").write_text(f'bind_socket = "127.0.0.1:{normal}";\ncount = 1;\n')
        (o / "worker-controller.inc").write_text(
            f'bind_socket = "127.0.0.1:{controller}";\ncount = 1;\n')
        self.log_path = self.dir / "log" / "rspamd.log"
        (o / "logging.inc").write_text(f'type = "file";\nfilename = "{self.log_path}";\n'
                                       'level = "info";\n')
        # the result as header fields (added through the milter protocol),
        # also for our loopback client
        (self.dir / "local.d" / "milter_headers.conf").write_text(
            'use = ["x-spamd-result", "x-rspamd-queue-id"];\nskip_local = false;\n'
            'skip_authenticated = false;\n')
        (o / "options.inc").write_text(
            'dns { nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }\n')
        d = self.dir
        self.proc = subprocess.Popen(
            ["rspamd", "-f", "-i", "-c", "/etc/rspamd/rspamd.conf",
             "--var", f"LOCAL_CONFDIR={d}", "--var", f"DBDIR={d}/db",
             "--var", f"RUNDIR={d}/run", "--var", f"LOGDIR={d}/log",
             "-u", "root", "-g", "root", "--insecure"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rspamd exited:\n" + self.log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                socket.create_connection(("127.0.0.1", normal), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("rspamd did not start listening:\n" + self.log())

    @property
    def spec(self):
        return f"inet:127.0.0.1:{self.port}"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
