"""Servers for the client end-to-end tests: aiosmtpd (a real SMTP server
with STARTTLS, implicit TLS and AUTH), small scripted SMTP servers for
behaviour aiosmtpd lacks (PIPELINING, CHUNKING, chosen replies), broken
peers (silent, closing at once, not SMTP), a self-signed certificate made
with `openssl req`, a test CA made with `openssl ca` (for expired, unknown-CA
and mismatched certificates), and dnsmasq serving a test zone on loopback.

Everything listens on 127.0.0.1 on a free port chosen by the kernel, and
every wait is bounded in time.
"""

import os
import socket
import ssl
import subprocess
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTPKIT = os.environ.get("SMTPKIT_BIN", "build/release/smtpkit")


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_smtpkit(*args, timeout=60, env=None, input_bytes=None):
    """Run the smtpkit binary; returns CompletedProcess with text output."""
    e = dict(os.environ)
    e.pop("SMTPKIT_PASSWORD", None)
    if env:
        e.update(env)
    return subprocess.run(
        [SMTPKIT, *args],
        input=input_bytes if input_bytes is not None else b"",
        capture_output=True,
        timeout=timeout,
        env=e,
        start_new_session=True,  # no controlling terminal: a password prompt can't block
    )


def text(cp):
    return cp.stdout.decode("utf-8", "replace"), cp.stderr.decode("utf-8", "replace")


# ---- certificates ---------------------------------------------------------


def make_cert(directory, cn="localhost", san="DNS:localhost,IP:127.0.0.1"):
    """A self-signed certificate and key (PEM) made by `openssl req`."""
    key = os.path.join(directory, f"{cn}.key")
    crt = os.path.join(directory, f"{cn}.crt")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={cn}/O=smtpkit test",
            "-addext", f"subjectAltName={san}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return crt, key


class ScratchCA:
    """A throw-away CA made with the openssl command. `openssl ca` signs
    with any validity period (-startdate/-enddate), so expired and
    not-yet-valid certificates need no clock tricks."""

    CONF = """[ca]
default_ca = test
[test]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
x509_extensions = ext
[anything]
commonName = supplied
organizationName = optional
[ext]
subjectAltName = {san}
basicConstraints = CA:FALSE
"""

    def __init__(self, directory, name="smtpkit test CA"):
        self.dir = os.path.join(directory, "ca-" + name.replace(" ", "_"))
        os.makedirs(self.dir, exist_ok=True)
        self.key = os.path.join(self.dir, "ca.key")
        self.crt = os.path.join(self.dir, "ca.crt")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
             "-out", self.crt, "-days", "2", "-subj", f"/CN={name}/O=smtpkit test"],
            check=True, capture_output=True, timeout=60,
        )
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("01\n")
        self.n = 0

    def issue(self, cn="localhost", san="DNS:localhost,IP:127.0.0.1", start=None, end=None):
        """A server certificate and key signed by this CA. start/end are
        YYYYMMDDHHMMSSZ; the default is valid from now for two days."""
        self.n += 1
        base = os.path.join(self.dir, f"{self.n}-{cn}")
        key, csr, crt, conf = base + ".key", base + ".csr", base + ".crt", base + ".cnf"
        with open(conf, "w") as f:
            f.write(self.CONF.format(dir=self.dir, san=san))
        subprocess.run(
            ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", csr, "-subj", f"/CN={cn}/O=smtpkit test"],
            check=True, capture_output=True, timeout=60,
        )
        args = ["openssl", "ca", "-batch", "-notext", "-config", conf, "-cert", self.crt,
                "-keyfile", self.key, "-in", csr, "-out", crt]
        args += ["-startdate", start] if start else []
        args += ["-enddate", end] if end else ["-days", "2"]
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        return crt, key


def server_tls_context(crt, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    return ctx


# ---- aiosmtpd ---------------------------------------------------------------


class RecordingHandler:
    """Records every message; refuses recipients listed in `refuse`
    (address -> reply line)."""

    def __init__(self, refuse=None):
        self.messages = []
        self.refuse = refuse or {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "content": envelope.original_content or envelope.content,
                "mail_options": list(envelope.mail_options),
                "login": getattr(session, "login_data", None),
            }
        )
        return "250 2.0.0 OK queued"


class PasswordCheck:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()
        self.seen = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.seen.append(mechanism)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


class Aio:
    """An aiosmtpd server on a free loopback port (context manager)."""

    def __init__(self, handler=None, tls_context=None, implicit_tls=None, auth=None,
                 require_starttls=False, **extra):
        self.handler = handler or RecordingHandler()
        self.port = free_port()
        kw = dict(extra)
        if tls_context is not None:
            kw["tls_context"] = tls_context
            kw["require_starttls"] = require_starttls
        if auth is not None:
            kw["authenticator"] = auth
            kw["auth_require_tls"] = True
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=implicit_tls,
            ready_timeout=10,
            **kw,
        )

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


# ---- scripted and broken servers ---------------------------------------------


class _ThreadServer:
    """Accepts connections on a free port and runs `serve(conn)` for each in a
    thread. Stops (and closes the listening socket) on exit."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.threads = []
        self.errors = []

    def serve(self, conn):
        raise NotImplementedError

    def _accept_loop(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, conn):
        try:
            conn.settimeout(15)
            self.serve(conn)
        except Exception as e:  # recorded, the test decides
            self.errors.append(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def __enter__(self):
        self.acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self.acceptor.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.acceptor.join(5)
        self.sock.close()
        for t in self.threads:
            t.join(5)


class SilentServer(_ThreadServer):
    """Accepts and never says anything (until the test ends)."""

    def serve(self, conn):
        self.stop.wait(30)


class ClosingServer(_ThreadServer):
    """Accepts and closes at once."""

    def serve(self, conn):
        conn.close()


class GarbageServer(_ThreadServer):
    """Answers like something that is not an SMTP server."""

    def __init__(self, payload=b"HTTP/1.1 400 Bad Request\r\nServer: test\r\n\r\n"):
        super().__init__()
        self.payload = payload

    def serve(self, conn):
        conn.sendall(self.payload)
        self.stop.wait(30)


class ScriptedSMTP(_ThreadServer):
    """A small SMTP server with chosen replies.

    greeting: the first reply (bytes, CRLF included)
    ehlo: list of capability lines after the first 250- line
    rcpt: function address -> reply line (str)
    mail_reply, data_reply: reply lines
    mail_delay: seconds to wait before answering MAIL; the bytes that
      arrived by then are kept in `after_mail` (shows pipelining)
    """

    def __init__(self, greeting=b"220 scripted.test ESMTP ready\r\n", ehlo=None, rcpt=None,
                 mail_reply="250 2.1.0 Sender OK", data_reply="250 2.0.0 Accepted",
                 mail_delay=0.0, ehlo_reply=None, lax_data=False):
        super().__init__()
        self.greeting = greeting
        self.ehlo = ehlo if ehlo is not None else ["PIPELINING", "SIZE 1048576", "8BITMIME",
                                                   "CHUNKING", "ENHANCEDSTATUSCODES"]
        self.ehlo_reply = ehlo_reply
        self.rcpt = rcpt or (lambda a: "250 2.1.5 Recipient OK")
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.mail_delay = mail_delay
        self.commands = []
        self.messages = []
        self.bdat_chunks = []
        self.after_mail = b""
        self.lax_data = lax_data  # answer 354 to DATA even without recipients

    def serve(self, conn):
        buf = bytearray()

        def fill():
            data = conn.recv(65536)
            if not data:
                raise EOFError
            buf.extend(data)

        def line():
            while b"\r\n" not in buf:
                fill()
            i = buf.index(b"\r\n")
            out = bytes(buf[:i])
            del buf[: i + 2]
            return out

        def exact(n):
            while len(buf) < n:
                fill()
            out = bytes(buf[:n])
            del buf[:n]
            return out

        def send(s):
            conn.sendall(s.encode() + b"\r\n")

        conn.sendall(self.greeting)
        if not self.greeting.startswith(b"220"):
            # Refusing servers still answer QUIT (RFC 5321 3.1).
            try:
                while True:
                    cmd = line()
                    self.commands.append(cmd.decode("latin-1"))
                    if cmd.upper().startswith(b"QUIT"):
                        send("221 2.0.0 Bye")
                        return
                    send("503 5.5.1 Service refused: only QUIT")
            except EOFError:
                return
        data_chunks = []
        mail_ok = False
        rcpts = 0
        while True:
            try:
                cmd = line()
            except EOFError:
                return
            text_ = cmd.decode("latin-1")
            self.commands.append(text_)
            verb = text_.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                if self.ehlo_reply:
                    send(self.ehlo_reply)
                    continue
                if verb == "HELO":
                    send("250 scripted.test")
                    continue
                lines = ["scripted.test greets you"] + self.ehlo
                for i, l in enumerate(lines):
                    send(("250-" if i < len(lines) - 1 else "250 ") + l)
            elif verb == "MAIL":
                if self.mail_delay:
                    time.sleep(self.mail_delay)
                    conn.setblocking(False)
                    try:
                        while True:
                            d = conn.recv(65536)
                            if not d:
                                break
                            buf.extend(d)
                    except BlockingIOError:
                        pass
                    conn.setblocking(True)
                    conn.settimeout(15)
                    self.after_mail = bytes(buf)
                send(self.mail_reply)
                mail_ok = self.mail_reply.startswith("2")
                rcpts = 0
            elif verb == "RCPT":
                addr = text_.split(":", 1)[1].strip()
                if addr.startswith("<"):
                    addr = addr[1 : addr.index(">")]
                if not mail_ok:
                    send("503 5.5.1 MAIL first")
                    continue
                reply = self.rcpt(addr)
                rcpts += reply.startswith("2")
                send(reply)
            elif verb == "DATA":
                if not (mail_ok and rcpts) and not self.lax_data:
                    send("554 5.5.1 No valid recipients" if mail_ok else "503 5.5.1 MAIL first")
                    continue
                send("354 Go ahead")
                body = bytearray()
                while True:
                    l = line()
                    if l == b".":
                        break
                    body.extend(l + b"\r\n")
                self.messages.append(bytes(body))
                send(self.data_reply)
                mail_ok = False
            elif verb == "BDAT":
                parts = text_.split()
                n = int(parts[1])
                chunk = exact(n)
                self.bdat_chunks.append(chunk)
                data_chunks.append(chunk)
                if len(parts) > 2 and parts[2].upper() == "LAST":
                    self.messages.append(b"".join(data_chunks))
                    data_chunks = []
                    send(self.data_reply)
                else:
                    send(f"250 2.0.0 {n} octets received")
            elif verb == "RSET":
                mail_ok = False
                send("250 2.0.0 Reset")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            elif verb == "NOOP":
                send("250 2.0.0 OK")
            else:
                send("502 5.5.1 Not implemented")


# ---- DNS ------------------------------------------------------------------------


class Dnsmasq:
    """dnsmasq answering for a test zone on 127.0.0.1:PORT, nothing else."""

    def __init__(self, tmpdir, args):
        self.port = free_port(socket.SOCK_DGRAM)
        self.log = os.path.join(tmpdir, "dnsmasq.log")
        self.args = [
            "dnsmasq", "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--group=root",
            "--local=/test/", f"--pid-file={os.path.join(tmpdir, 'dnsmasq.pid')}",
            *args,
        ]

    def __enter__(self):
        # dnsmasq listens on UDP and TCP: a port free for UDP may be taken
        # for TCP (by another test running meanwhile): then try another.
        for attempt in range(5):
            try:
                return self._start()
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == 4:
                    raise
                self.logf.close()
                self.port = free_port(socket.SOCK_DGRAM)
                self.args = [a if not a.startswith("--port=") else f"--port={self.port}"
                             for a in self.args]

    def _start(self):
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT)
        # Ready when it answers a query; bounded wait.
        deadline = time.monotonic() + 10
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x05ready\x04test\x00\x00\x01\x00\x01")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: " + open(self.log).read())
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                s.recvfrom(512)
                return self
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise RuntimeError("dnsmasq did not start")

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.logf.close()


class SilentDNS:
    """A UDP socket that receives DNS queries and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()
