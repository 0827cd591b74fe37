"""A private Dovecot 2.3 for the end-to-end tests: its own configuration,
base_dir, state, log and mail under a temporary directory, IMAP and LMTP
on loopback ports of its own, LMTP also on a Unix socket, the auth server's
client socket for SASL, a passwd-file shared as passdb and userdb, and
optionally Sieve (dovecot-sieve) on LMTP deliveries.

    dv = PrivateDovecot(tmp_path, users={"alice": "{PLAIN}secret"})
    dv.start()
    dv.lmtp_port, dv.lmtp_socket, dv.imap_port, dv.auth_socket
    dv.imap_messages("alice", "secret")   # bytes of each message in INBOX
    dv.stop()

Needs root (Dovecot's master runs as root and drops to its own users),
which CI has. Mail is stored as `nobody`.
"""

import imaplib
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from e2e_paths import open_path_for

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_path(path, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


class PrivateDovecot:
    """users: {name: "{SCHEME}hash" or a full passwd-file line after the
    name}. passwd_file: use this file instead (shared with smtpkit).
    userdb: "static" (every user is `nobody` with a home under mail_root)
    or "passwd-file" (uid, gid and home from the passwd_file's own fields,
    as one file for passdb and userdb).
    sieve: the text of a Sieve script applied to every LMTP delivery
    (`fileinto :create` needs `require ["fileinto", "mailbox"];`)."""

    def __init__(self, tmp_path, users=None, passwd_file=None, sieve=None, extra="",
                 userdb="static"):
        # Dovecot's own users (dovecot, nobody) read the files under it.
        open_path_for(tmp_path)
        self.dir = Path(tmp_path) / "dovecot"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.base_dir = self.dir / "run"
        self.mail_root = self.dir / "mail"
        self.mail_root.mkdir(exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, grp.getgrnam("nogroup").gr_gid
        os.chown(self.mail_root, self.uid, self.gid)
        self.log_path = self.dir / "dovecot.log"
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.lmtp_socket = str(self.base_dir / "lmtp")
        self.auth_socket = str(self.base_dir / "auth-client")
        if passwd_file is None:
            passwd_file = self.dir / "passwd"
            lines = []
            for name, value in (users or {}).items():
                lines.append(f"{name}:{value}" if ":" in value else f"{name}:{value}::::::")
            passwd_file.write_text("\n".join(lines) + "\n")
        self.passwd_file = Path(passwd_file)
        self.sieve_path = None
        plugins = ""
        if sieve is not None:
            # Dovecot compiles the script next to it, as the mail user.
            sieve_dir = self.dir / "sieve"
            sieve_dir.mkdir(exist_ok=True)
            self.sieve_path = sieve_dir / "filter.sieve"
            self.sieve_path.write_text(sieve)
            for p in (sieve_dir, self.sieve_path):
                os.chown(p, self.uid, self.gid)
            plugins = "  mail_plugins = $mail_plugins sieve\n"
        self.conf = self.dir / "dovecot.conf"
        sieve_conf = (f"plugin {{\n  sieve = file:{self.dir}/sieve;active={self.sieve_path}\n}}\n") if self.sieve_path else ""
        self.conf.write_text(f"""
base_dir = {self.base_dir}
state_dir = {self.dir}/state
log_path = {self.log_path}
instance_name = smtpkit-test-{self.imap_port}
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.mail_root}/%n
mail_uid = {self.uid}
mail_gid = {self.gid}
first_valid_uid = 0
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = {self.passwd_file}
}}
{self._userdb(userdb)}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
protocol lmtp {{
{plugins}}}
{sieve_conf}{extra}
""")
        self.proc = None

    def _userdb(self, kind):
        if kind == "passwd-file":
            return f"userdb {{\n  driver = passwd-file\n  args = {self.passwd_file}\n}}"
        return (f"userdb {{\n  driver = static\n"
                f"  args = uid={self.uid} gid={self.gid} home={self.mail_root}/%n\n}}")

    def imap_login(self, user, password):
        """True when Dovecot's IMAP accepts the login (passdb and userdb)."""
        with imaplib.IMAP4("127.0.0.1", self.imap_port) as m:
            try:
                m.login(user, password)
            except imaplib.IMAP4.error:
                return False
            typ, _ = m.select("INBOX")
            return typ == "OK"

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ok = (wait_port("127.0.0.1", self.imap_port) and wait_port("127.0.0.1", self.lmtp_port)
              and wait_path(self.auth_socket) and wait_path(self.lmtp_socket))
        if not ok:
            self.stop()
            raise RuntimeError("private dovecot did not start: " + self.log())
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _children(self):
        """Pids of the master's child processes (auth, imap-login, ...)."""
        if not self.proc:
            return []
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid:
                kids.append(int(d))
        return kids

    def stop(self):
        """Stop Dovecot as a service manager would: the master and every
        process it started (its auth process would otherwise go on serving
        the clients still connected to it)."""
        if self.proc and self.proc.poll() is None:
            kids = self._children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None

    def maildir(self, user):
        return self.mail_root / user

    def imap_messages(self, user, password, mailbox="INBOX"):
        """The full bytes of every message in the mailbox, read over IMAP."""
        with imaplib.IMAP4("127.0.0.1", self.imap_port) as m:
            m.login(user, password)
            typ, _ = m.select(mailbox, readonly=True)
            if typ != "OK":
                return []
            typ, data = m.search(None, "ALL")
            out = []
            for num in data[0].split():
                typ, msg = m.fetch(num, "(BODY.PEEK[])")
                out.append(msg[0][1])
            return out

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
