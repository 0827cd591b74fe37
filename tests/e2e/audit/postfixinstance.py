"""A private Postfix instance for the audit tests: its own configuration,
queue and data directories under a temporary folder, smtpd on 127.0.0.1 at
a free port with STARTTLS (a self-signed certificate), local delivery only
for its own test domains, and loopback NOT in mynetworks, so the audit
speaks to it as an outside client would. Needs root (Postfix's master runs
as root and drops to the postfix user), like the rest of the e2e tests.

    pf = PostfixInstance(tmp_path).start()   # pf.port
    ...
    pf.stop()
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"


def postfix_available():
    return os.geteuid() == 0 and os.access(POSTFIX, os.X_OK) and \
        os.path.isdir("/usr/lib/postfix/sbin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{port} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination = mx.postfix.test, postfix.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# the test client on loopback is an outside client: no relaying for it
mynetworks = 192.0.2.1/32
alias_maps =
alias_database =
local_recipient_maps =
home_mailbox = Maildir/
mailbox_command =
maillog_file = {log}
maillog_file_prefixes = {dir}
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_banner = $myhostname ESMTP Postfix
default_process_limit = 20
smtpd_client_connection_rate_limit = 0
"""


class PostfixInstance:
    def __init__(self, tmp_path):
        self.dir = Path(tmp_path) / "postfix"
        self.conf = self.dir / "etc"
        self.queue = self.dir / "spool"
        self.data = self.dir / "data"
        self.log = self.dir / "maillog"
        self.port = free_port()
        for d in (self.conf, self.queue, self.data):
            d.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix", "postfix")
        # the postfix user must reach its data directory: pytest makes its
        # temporary directories 0700
        for d in [self.dir, *self.dir.parents]:
            if str(d) in ("/", "/tmp"):
                break
            os.chmod(d, d.stat().st_mode | 0o011)
        cert, key = self.conf / "cert.pem", self.conf / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=mx.postfix.test", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
        (self.conf / "main.cf").write_text(MAIN_CF.format(
            queue=self.queue, data=self.data, log=self.log, dir=self.dir, cert=cert, key=key))
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))

    def postfix(self, *args, check=True):
        return subprocess.run([POSTFIX, "-c", str(self.conf), *args], capture_output=True,
                              timeout=60, check=check)

    def start(self):
        self.postfix("set-permissions", check=False)
        r = self.postfix("start", check=False)
        if r.returncode != 0:
            raise RuntimeError(f"postfix start failed: {r.stdout!r} {r.stderr!r} "
                               f"{self.maillog()}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(100).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("postfix did not greet: " + self.maillog())

    def maillog(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        self.postfix("stop", check=False)
        deadline = time.monotonic() + 20
        pid = self.queue / "pid" / "master.pid"
        while pid.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
