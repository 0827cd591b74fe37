"""A private OpenDKIM (Debian's opendkim) for the tests: its own
configuration, a key made with opendkim-genkey in a temporary directory,
listening on a loopback port; never the system's instance. Verification
reads the public key from a TestPublicKeys file (opendkim.conf(5)), the
same TXT text a DNS zone would publish, so no DNS is needed."""

import os
import re
import subprocess
import time
from pathlib import Path

import socket as _socket


def free_port():
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenDKIM:
    def __init__(self, tmp_path: Path, mode, domain="example.test", selector="sel", keydir=None,
                 internal="127.0.0.1"):
        self.dir = tmp_path / f"opendkim-{mode}-{internal}"
        self.dir.mkdir()
        self.domain, self.selector = domain, selector
        self.keydir = keydir or self.dir
        if keydir is None:
            subprocess.run(["opendkim-genkey", "-b", "1024", "-d", domain, "-s", selector,
                            "-D", str(self.dir)], check=True)
        self.port = free_port()
        keys = self.dir / "testkeys"
        keys.write_text(f"{selector}._domainkey.{domain} {self.txt_record()}\n")
        conf = self.dir / "opendkim.conf"
        conf.write_text("\n".join([
            "Syslog no",
            "Background no",
            f"Mode {mode}",
            f"Domain {domain}",
            f"Selector {selector}",
            f"KeyFile {self.keydir}/{selector}.private",
            f"Socket inet:{self.port}@127.0.0.1",
            f"PidFile {self.dir}/pid",
            "Canonicalization relaxed/simple",
            # the verifier must see the loopback client as external
            "InternalHosts " + (internal if "s" in mode else "192.0.2.1"),
            f"TestPublicKeys {keys}",
            "AlwaysAddARHeader yes",
            "AuthservID mx.example.test",
            "RequireSafeKeys no",  # the key lives under /tmp (world-writable, sticky)
            "",
        ]))
        self.proc = subprocess.Popen(["opendkim", "-f", "-x", str(conf)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("opendkim exited: " + self.proc.stdout.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("opendkim did not start listening")

    @property
    def spec(self):
        return f"inet:127.0.0.1:{self.port}"

    def txt_record(self):
        """The TXT record opendkim-genkey wrote, as one string."""
        text = (self.keydir / f"{self.selector}.txt").read_text()
        return "".join(re.findall(r'"([^"]*)"', text))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=1)  # libmilter waits 5 s for idle sessions
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.exists(self.dir / "pid"):
            os.unlink(self.dir / "pid")
