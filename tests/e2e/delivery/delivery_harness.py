"""The outbound test harness: what the delivery tests put on the other side
of smtpkit's delivery agent. Loopback only; every wait is bounded.

    ScriptedMX(ip, port, ...)   an SMTP server on an address of 127.0.0.0/8
                                (127.0.0.2, 127.0.0.3, ...: all reachable on
                                Linux loopback without configuration), its
                                replies scripted per command and per attempt,
                                recording every session (commands, messages)
    mx_zone({domain: [(pref, host, ip), ...]})
                                dnsmasq arguments for a test zone whose MX
                                records point at those addresses (use with
                                fakeservers.Dnsmasq, as the `mx_dns` fixture)
    PrivatePostfix(ip, port)    a private Postfix instance (its own
                                config_directory, queue_directory and
                                data_directory in a temporary folder, started
                                with `postfix -c DIR start`) listening on
                                ip:port as a real receiving MX, delivering
                                every recipient of its domains to one Maildir
                                (pf.messages() -> list of bytes, pf.log())
    PostfixSink(ip, port)       Postfix's smtp-sink: a fast receiving MX that
                                dumps each message to a file (for benchmarks)

Scripting a ScriptedMX: `replies` maps a verb ("GREETING", "EHLO", "MAIL",
"RCPT", "DATA", "DOT" for the end of data) to a reply, a list of replies
(one per session, the last one repeats: ["451 4.3.0 try later",
"250 2.0.0 ok"] is 4xx then 2xx on the next attempt) or a function
(session_index, argument) -> reply. A reply of None drops the connection
there; "SILENT" says nothing and holds the connection. `greeting_delay`
waits before the greeting; `drop_in_data` closes after that many octets of
message data. `capabilities` lists the EHLO keywords (PIPELINING, SIZE,
8BITMIME, SMTPUTF8, STARTTLS...). With `tls_context` (an ssl.SSLContext for
the server side, e.g. from fakeservers.make_cert) STARTTLS answers 220 and
the handshake follows; a STARTTLS reply of "BREAK" answers 220 and then
sends garbage instead of a handshake (a failed handshake). `sessions`
records, per connection, the command lines, whether TLS was started and
the messages ({"mail_from", "rcpt_tos", "data"}).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

_CAPS = object()  # "answer EHLO with the capabilities"
DEFAULT_CAPS = ["PIPELINING", "SIZE 10485760", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]


class ScriptedMX:
    def __init__(self, ip="127.0.0.2", port=0, replies=None, capabilities=None,
                 greeting_delay=0.0, drop_in_data=None, name=None, tls_context=None):
        self.ip = ip
        self.tls_context = tls_context
        self.name = name or f"mx-{ip}"
        self.replies = dict(replies or {})
        self.capabilities = list(DEFAULT_CAPS if capabilities is None else capabilities)
        self.greeting_delay = greeting_delay
        self.drop_in_data = drop_in_data
        self.sessions = []
        self.errors = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(32)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.threads = []
        self.lock = threading.Lock()

    # -- scripting -------------------------------------------------------

    def reply(self, verb, index, arg, default):
        r = self.replies.get(verb, default)
        if callable(r):
            r = r(index, arg)
        elif isinstance(r, (list, tuple)):
            r = r[min(index, len(r) - 1)] if r else default
        return r

    @property
    def messages(self):
        return [m for s in self.sessions for m in s["messages"]]

    # -- serving ---------------------------------------------------------

    def __enter__(self):
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.acceptor.join(5)
        self.sock.close()
        for t in self.threads:
            t.join(5)

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                index = len(self.sessions)
                session = {"index": index, "commands": [], "messages": [], "closed_by": None,
                           "tls": False}
                self.sessions.append(session)
            t = threading.Thread(target=self._run, args=(conn, session), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, conn, session):
        try:
            conn.settimeout(30)
            self._serve(conn, session)
        except (EOFError, ConnectionError, socket.timeout):
            session["closed_by"] = session["closed_by"] or "client"
        except Exception as e:  # recorded; the test decides
            self.errors.append(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _serve(self, conn0, session):
        sock = [conn0]  # replaced by the TLS socket after STARTTLS
        try:
            self._dialogue(sock, session)
        finally:
            if sock[0] is not conn0:
                try:
                    sock[0].close()
                except OSError:
                    pass

    def _dialogue(self, sock, session):
        buf = bytearray()
        i = session["index"]

        def line():
            while b"\r\n" not in buf:
                d = sock[0].recv(65536)
                if not d:
                    raise EOFError
                buf.extend(d)
            k = buf.index(b"\r\n")
            out = bytes(buf[:k])
            del buf[: k + 2]
            return out

        def say(r):
            """Send reply r; False when the script says to stop here."""
            if r is None:
                session["closed_by"] = "server"
                return False
            if r == "SILENT":
                session["closed_by"] = "silent"
                self.stop.wait(30)
                return False
            sock[0].sendall(r.encode() + b"\r\n")
            return not r.startswith("421")

        if self.greeting_delay:
            if self.stop.wait(self.greeting_delay):
                return
        if not say(self.reply("GREETING", i, None, f"220 {self.name} ESMTP scripted")):
            return
        tx = None
        while True:
            cmd = line()
            text = cmd.decode("utf-8", "replace")
            session["commands"].append(text)
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                r = self.reply("EHLO", i, arg, _CAPS)
                if r is _CAPS:
                    caps = [c for c in self.capabilities
                            if not (session["tls"] and c.upper() == "STARTTLS")]
                    lines = [self.name] + caps
                    r = "\r\n".join(("250-" if k < len(lines) - 1 else "250 ") + l
                                    for k, l in enumerate(lines))
                if not say(r):
                    return
            elif verb == "HELO":
                if not say(self.reply("HELO", i, arg, f"250 {self.name}")):
                    return
            elif verb == "MAIL":
                r = self.reply("MAIL", i, arg, "250 2.1.0 Ok")
                tx = {"mail_from": arg, "rcpt_tos": [], "data": None} if r and r[0] == "2" else None
                if not say(r):
                    return
            elif verb == "RCPT":
                addr = arg.split(":", 1)[-1].strip()
                addr = addr[1:addr.index(">")] if addr.startswith("<") and ">" in addr else addr
                if tx is None:
                    r = "503 5.5.1 MAIL first"
                else:
                    r = self.reply("RCPT", i, addr, "250 2.1.5 Ok")
                    if r and r[0] == "2":
                        tx["rcpt_tos"].append(addr)
                if not say(r):
                    return
            elif verb == "DATA":
                if tx is None or not tx["rcpt_tos"]:
                    if not say("554 5.5.1 No valid recipients"):
                        return
                    continue
                if not say(self.reply("DATA", i, None, "354 End data with <CR><LF>.<CR><LF>")):
                    return
                body = bytearray()
                while True:
                    if self.drop_in_data is not None and len(body) >= self.drop_in_data:
                        session["closed_by"] = "server"
                        return
                    l = line()
                    if l == b".":
                        break
                    body.extend((l[1:] if l.startswith(b".") else l) + b"\r\n")
                tx["data"] = bytes(body)
                r = self.reply("DOT", i, tx, "250 2.0.0 Ok: queued")
                if r and r[0] == "2":
                    session["messages"].append(tx)
                tx = None
                if not say(r):
                    return
            elif verb == "RSET":
                tx = None
                say("250 2.0.0 Ok")
            elif verb == "NOOP":
                say("250 2.0.0 Ok")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                session["closed_by"] = "quit"
                return
            elif verb == "STARTTLS" and "STARTTLS" in self.capabilities and not session["tls"]:
                default = "220 2.0.0 Ready to start TLS" if self.tls_context else \
                    "454 4.7.0 TLS not available"
                r = self.reply("STARTTLS", i, None, default)
                if r == "BREAK":
                    sock[0].sendall(b"220 2.0.0 Ready to start TLS\r\n")
                    sock[0].sendall(b"this is not a TLS handshake\r\n" * 4)
                    session["closed_by"] = "server"
                    return
                if not say(r):
                    return
                if r.startswith("220") and self.tls_context:
                    buf.clear()  # nothing sent before the handshake counts
                    sock[0] = self.tls_context.wrap_socket(sock[0], server_side=True)
                    session["tls"] = True
                    tx = None
            else:
                say("502 5.5.2 Command not recognized")


def mx_zone(domains):
    """dnsmasq arguments: {domain: [(preference, host, ip), ...]}; the hosts
    get A records (several ips for one host: list them in separate tuples)."""
    args = []
    seen = set()
    for domain, mxs in domains.items():
        for pref, host, ip in mxs:
            if (domain, host) not in seen:
                args.append(f"--mx-host={domain},{host},{pref}")
                seen.add((domain, host))
            args.append(f"--host-record={host},{ip}")
    return args


MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PrivatePostfix:
    """A Postfix instance of its own: nothing of the system's /etc/postfix
    is used or changed, nothing listens but ip:port. Mail for `domains`
    (any local part) is delivered to one Maildir; everything else is
    refused (no relaying). Needs root (Postfix's master runs as root and
    its daemons as the `postfix` user, as the Debian package sets up)."""

    def __init__(self, ip="127.0.0.7", port=None, domains=("postfix.test",), extra_main=""):
        self.ip = ip
        self.port = port or free_port(ip)
        self.domains = list(domains)
        self.extra_main = extra_main
        self.top = tempfile.mkdtemp(prefix="smtpkit-postfix-")
        os.chmod(self.top, 0o755)
        self.etc = os.path.join(self.top, "etc")
        self.queue = os.path.join(self.top, "queue")
        self.data = os.path.join(self.top, "data")
        self.maildir = os.path.join(self.top, "mail", "maildir")
        self.logfile = os.path.join(self.top, "postfix.log")

    def _write_config(self):
        import pwd
        for d in (self.etc, self.queue, self.data, os.path.dirname(self.maildir)):
            os.makedirs(d, exist_ok=True)
        pf = pwd.getpwnam("postfix")
        os.chown(self.data, pf.pw_uid, pf.pw_gid)
        nobody = pwd.getpwnam("nobody")
        os.chown(os.path.dirname(self.maildir), nobody.pw_uid, nobody.pw_gid)
        main = f"""\
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = postfix.test
mydestination =
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = reject_unauth_destination
maillog_file_prefixes = {self.top}
maillog_file = {self.logfile}
virtual_mailbox_domains = {", ".join(self.domains)}
virtual_mailbox_base = {os.path.dirname(self.maildir)}
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP Postfix
{self.extra_main}
"""
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen=f"{self.ip}:{self.port}"))

    def __enter__(self):
        if os.geteuid() != 0:
            raise RuntimeError("a private Postfix instance needs root")
        self._write_config()
        r = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: " + r.stdout + r.stderr + self.log())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.ip, self.port), timeout=0.5) as s:
                    s.settimeout(5)
                    if s.recv(100).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("postfix did not start listening: " + self.log())

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def messages(self, wait=0.0, count=1):
        """The delivered messages (bytes), oldest first; waits up to `wait`
        seconds for at least `count` of them."""
        deadline = time.monotonic() + wait
        while True:
            new = os.path.join(self.maildir, "new")
            names = sorted(os.listdir(new)) if os.path.isdir(new) else []
            if len(names) >= count or time.monotonic() >= deadline:
                out = []
                for n in names:
                    with open(os.path.join(new, n), "rb") as f:
                        out.append(f.read())
                return out
            time.sleep(0.05)

    def __exit__(self, *exc):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=60)
        # master exits within a second or so; then nothing of it is left
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        deadline = time.monotonic() + 10
        while os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.top, ignore_errors=True)


class PostfixSink:
    """Postfix's smtp-sink (from the postfix package) listening on ip:port:
    a real SMTP implementation as the receiving MX; each message is dumped
    to a file of `directory` with its envelope (smtp-sink -d)."""

    def __init__(self, directory, ip="127.0.0.7", port=None):
        self.ip = ip
        self.port = port or free_port(ip)
        # smtp-sink writes as nobody when started as root: a directory of
        # its own that nobody can reach (pytest's tmp_path is 0700)
        self.top = tempfile.mkdtemp(prefix="smtpkit-sink-")
        os.chmod(self.top, 0o755)
        self.dir = os.path.join(self.top, "sink")
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
        self.log = os.path.join(directory, "smtp-sink.log")

    def __enter__(self):
        args = [shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-c", "-d",
                os.path.join(self.dir, "%M."), f"{self.ip}:{self.port}", "64"]
        if os.geteuid() == 0:
            args[1:1] = ["-u", "nobody"]
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink exited: " + open(self.log).read())
            try:
                with socket.create_connection((self.ip, self.port), timeout=0.5) as s:
                    s.recv(100)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def messages(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, name), "rb") as f:
                out.append(f.read())
        return out

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.logf.close()
        shutil.rmtree(self.top, ignore_errors=True)


def free_port(ip="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]
