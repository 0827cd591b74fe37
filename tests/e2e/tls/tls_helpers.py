"""Helpers for the TLS/AUTH end-to-end tests: password files made with
`smtpkit passwd`, certificates made with the openssl command, and a raw
SMTP dialogue that can switch to TLS (STARTTLS, RFC 3207) or start in it
(RFC 8314), for tests that need exact bytes on the wire."""

import base64
import os
import select
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

# The accounts of the test password file: user -> (password, scheme).
USERS = {
    "alice@example.test": ("wonderland", "yescrypt"),
    "bob": ("builder", "sha512-crypt"),
}


# The account the test servers drop to when the tests run as root (see
# run_as_user in tests/e2e/conftest.py); None otherwise: the server then
# runs as the current user, who owns every file the tests make.
SERVER_USER = "nobody" if os.geteuid() == 0 else None


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_passwd(smtpkit_bin, path, users):
    """Write a password file with hashes from `smtpkit passwd --stdin`."""
    lines = ["# made by the tests with smtpkit passwd"]
    for user, (password, scheme) in users.items():
        r = subprocess.run([smtpkit_bin, "passwd", "--stdin", "--scheme", scheme, "--cost",
                            "1000" if scheme == "sha512-crypt" else "1", user],
                           input=password.encode() + b"\n", capture_output=True, timeout=30,
                           check=True)
        lines.append(r.stdout.decode().strip())
    Path(path).write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o644)


def openssl_pair(directory, cn, days=30, owner=None):
    """A self-signed EC pair made by the openssl command (independent of
    smtpkit's own generator); the key is handed to `owner` (the account the
    server runs as, SERVER_USER) so a SIGHUP reload can read it, as the
    server demands when it starts; owner=None leaves it to root alone."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    cert, key = directory / "cert.pem", directory / "key.pem"
    for p in (cert, key):
        if p.exists():
            p.unlink()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1",
                    "-days", str(days)], check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    if owner and os.geteuid() == 0:
        shutil.chown(key, user=owner)
    return cert, key


def plain_auth(user, password):
    """The RFC 4616 PLAIN initial response (empty authorization identity)."""
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


class Dialog:
    def __init__(self, host, port, implicit_tls=None, timeout=10, greet=True):
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if implicit_tls is not None:
            self.sock = implicit_tls.wrap_socket(self.sock, server_hostname=host)
        self.buf = b""
        if greet:
            code, lines = self.reply()
            assert code == 220, lines

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        """(code, [lines]) of the next reply, (None, lines) at EOF."""
        lines = []
        while True:
            line = self._line()
            if line is None:
                return None, lines
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def ehlo(self, name="client.example"):
        code, lines = self.cmd("EHLO " + name)
        assert code == 250, lines
        return [l[4:] for l in lines]

    def starttls(self, ctx):
        code, lines = self.cmd("STARTTLS")
        assert code == 220, lines
        assert self.buf == b"", "bytes after the 220 to STARTTLS"
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host)

    def quiet(self, timeout=0.5):
        """True if the server sends nothing for `timeout` seconds."""
        if self.buf:
            return False
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return False
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return True
        try:
            self.sock.settimeout(0.2)
            data = self.sock.recv(4096)
        except (ssl.SSLWantReadError, socket.timeout):
            return True
        finally:
            self.sock.settimeout(10)
        self.buf += data
        return False

    def at_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
