"""Scale-out as docs/SCALING.md describes it, with the parts that exist:
two `smtpkit serve` hosts, shared nothing (each its own configuration,
spool, relay_queue and log), behind one real HAProxy (mode tcp,
send-proxy-v2, health checks), both handing local mail by LMTP to one
private Dovecot (host a over TCP, host b over Dovecot's Unix socket).
Clients connect to HAProxy from 127.0.0.5, so the PROXY header is the only
way a host can know that address.

What is checked, against the real processes:
- every message sent through the balancer is in Dovecot exactly once (IMAP
  read-back), both hosts served some, and each host's Received header and
  log name the client 127.0.0.5, never the balancer;
- the outbound queue is per host: mail a host accepted for another domain
  is in that host's queue only (`smtpkit queue list --json` of each);
- per-address limits are per host: connections_per_ip = 2 on each host
  lets one client hold 4 connections through a round-robin balancer, and
  2 again when the balancer keeps a client on one host (balance source);
- SIGTERM to one host while a client sends: HAProxy's health check takes
  it out, the other host takes every connection, nothing is lost and
  nothing is delivered twice.
Every loop is bounded in count and time."""

import json
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

E2E = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(E2E / "serve"))    # haproxy_helpers, loopback
sys.path.insert(0, str(E2E / "dovecot"))  # private_dovecot

from haproxy_helpers import HAProxy  # noqa: E402
from loopback import free_port, read_reply  # noqa: E402
from private_dovecot import PrivateDovecot  # noqa: E402

CLIENT = "127.0.0.5"
USERS = {"alice@example.test": "{PLAIN}secret"}
PASSWORD = "secret"
N = 20            # messages through the balancer
SEND_TIMEOUT = 15  # seconds per SMTP dialogue


class Host:
    """One smtpkit host: the fixture's server (its plain listener takes the
    fixture's start probe) plus a proxy_protocol listener for HAProxy."""

    def __init__(self, srv, proxy_port, queue):
        self.srv, self.proxy_port, self.queue = srv, proxy_port, queue

    def backend(self):
        return ("127.0.0.1", self.proxy_port, "send-proxy-v2")

    def ids(self):
        """The message ids this host accepted (its event=message lines with 250)."""
        return set(re.findall(r"event=message [^\n]*id=([0-9A-V]{20}) [^\n]*result=250",
                              self.srv.log()))


def start_hosts(server, tmp_path, dv, limits=None, extra=""):
    hosts = []
    lmtp_targets = [f"127.0.0.1:{dv.lmtp_port}", f"unix:{dv.lmtp_socket}"]
    for name, lmtp in zip(("a", "b"), lmtp_targets):
        pport = free_port()
        queue = tmp_path / f"queue-{name}"
        listener = f'}},\n  {{ address = "127.0.0.1"; port = {pport}; proxy_protocol = true;'
        conf = [f'lmtp = "{lmtp}";',
                'proxy_networks = [ "127.0.0.1/32" ];',
                f'relay_queue = "{queue}";',
                # the queue as the host accepted it: no delivery agent looks
                # remote.test up outside the machine
                "delivery = { enabled = false; };",
                extra]
        srv = server(listener=listener, limits=limits, mailboxes={"alice@example.test": "alice"},
                     extra="\n".join(conf))
        hosts.append(Host(srv, pport, queue))
    # shared nothing: nothing of one host's files is the other's
    a, b = hosts
    assert a.srv.mail_root != b.srv.mail_root and a.queue != b.queue
    assert a.srv.conf_path != b.srv.conf_path and a.srv.log_path != b.srv.log_path
    return hosts


def message(n):
    return (f"From: Carol <carol@remote.test>\r\n"
            f"To: Alice <alice@example.test>\r\n"
            f"Subject: scale {n}\r\n"
            f"Message-ID: <scale-{n}@remote.test>\r\n"
            f"\r\n"
            f"message number {n}\r\n").encode()


def send_once(port, n, rcpt="alice@example.test"):
    """One SMTP dialogue through the balancer from CLIENT: the id of the
    250, or raises (a refused greeting, a 4xx, a lost connection)."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=SEND_TIMEOUT, source_address=(CLIENT, 0),
                     local_hostname="client.test")
    try:
        s.ehlo()
        s.mail("carol@remote.test")
        code, reply = s.rcpt(rcpt)
        if code != 250:
            raise smtplib.SMTPResponseException(code, reply)
        code, reply = s.data(message(n))
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        m = re.search(rb"queued as ([0-9A-V]{20})", reply)
        assert m, reply
        return m.group(1).decode()
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()  # the 250 counts; a lost QUIT does not undo it


def send_retrying(port, n, attempts=6, rcpt="alice@example.test"):
    """As a sending MTA does: a temporary failure before the 250 (a 421, a
    4xx, a lost connection) means try again, here at most `attempts` times
    0.3 s apart; a 5xx is final and raised. Returns (id, [each failed try])."""
    failures = []
    for _ in range(attempts):
        try:
            return send_once(port, n, rcpt), failures
        except (smtplib.SMTPException, OSError) as e:
            if isinstance(e, smtplib.SMTPResponseException) and e.smtp_code >= 500:
                raise
            failures.append(repr(e))
            time.sleep(0.3)
    raise AssertionError(f"message {n} not accepted after {attempts} tries: {failures}")


def inbox_by_subject(dv):
    """{n: [message bytes, ...]} of alice's INBOX, read over IMAP."""
    out = {}
    for m in dv.imap_messages("alice@example.test", PASSWORD):
        subj = re.search(rb"\r\nSubject: scale (\d+)\r\n", m)
        assert subj, m[:400]
        out.setdefault(int(subj.group(1)), []).append(m)
    return out


def wait_inbox(dv, count, timeout=10.0):
    """The inbox once it holds `count` messages (LMTP delivered before each
    250, so this only absorbs IMAP's view catching up)."""
    deadline = time.monotonic() + timeout
    while True:
        got = inbox_by_subject(dv)
        if sum(len(v) for v in got.values()) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def check_client_address(msg, qid):
    """The Received header of the host that took the message names the
    client from the PROXY header, not the balancer."""
    m = re.search(rb"Received: from client\.test \(\[([0-9.]+)\]\)\r\n\s+by mx\.example\.test "
                  rb"\(smtpkit\) with ESMTP id ([0-9A-V]{20})", msg)
    assert m, msg[:600]
    assert m.group(1).decode() == CLIENT and m.group(2).decode() == qid, m.group(0)


def test_two_hosts_share_the_load_and_see_the_client(server, tmp_path):
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        a, b = start_hosts(server, tmp_path, dv)
        with HAProxy(tmp_path, {"mx": [a.backend(), b.backend()]}, check=True,
                     balance="roundrobin") as hp:
            sent = {}
            for n in range(N):
                qid, failures = send_retrying(hp.port("mx"), n)
                assert failures == [], failures  # both hosts up: no retry needed
                sent[n] = qid
        inbox = wait_inbox(dv, N)
        assert sorted(inbox) == list(range(N)), sorted(inbox)
        for n, msgs in inbox.items():
            assert len(msgs) == 1, f"message {n} delivered {len(msgs)} times"
            assert msgs[0].endswith(b"\r\n\r\n" + f"message number {n}\r\n".encode())
            check_client_address(msgs[0], sent[n])
        # each message taken by exactly one host, and both hosts took some
        ids_a, ids_b = a.ids(), b.ids()
        assert ids_a.isdisjoint(ids_b)
        assert ids_a | ids_b == set(sent.values())
        assert len(ids_a) >= 1 and len(ids_b) >= 1, (len(ids_a), len(ids_b))
        # round robin over two healthy hosts: an even split
        assert len(ids_a) == len(ids_b) == N // 2, (len(ids_a), len(ids_b))
        # each host's log names the client (and the proxy it came through)
        for h in (a, b):
            log = h.srv.log()
            for qid in h.ids():
                assert re.search(rf"event=message conn=\d+ peer={re.escape(CLIENT)} id={qid} ",
                                 log), qid
            assert len(re.findall(rf"event=connect conn=\d+ peer={re.escape(CLIENT)} port=\d+ "
                                  rf"listener=127\.0\.0\.1:{h.proxy_port} trusted=0 conns=\d+ "
                                  rf"proxy=127\.0\.0\.1\n", log)) == N // 2
            assert "event=proxy-refused" not in log
            # nothing stays behind on a host: LMTP took each message before the 250
            assert list((h.srv.mail_root / ".spool").iterdir()) == []
            env = h.queue / "env"
            assert not env.exists() or list(env.iterdir()) == []
        for h in (a, b):
            assert h.srv.stop() == 0


def queue_ids(smtpkit_bin, host):
    """The ids in one host's outbound queue, by `smtpkit queue list --json`."""
    out = subprocess.run([smtpkit_bin, "queue", "-c", str(host.srv.conf_path), "list", "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["broken"] == [], doc
    return {m["id"] for m in doc["messages"]}


def test_each_host_has_its_own_queue(server, tmp_path, smtpkit_bin):
    """Mail for another domain (the client is a trusted network of both
    hosts) waits in the queue of the host that accepted it, and only
    there: draining a host means emptying its own queue."""
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        a, b = start_hosts(server, tmp_path, dv, extra=f'trusted_networks = [ "{CLIENT}/32" ];')
        with HAProxy(tmp_path, {"mx": [a.backend(), b.backend()]}, check=True,
                     balance="roundrobin") as hp:
            sent = [send_retrying(hp.port("mx"), n, attempts=1, rcpt="friend@remote.test")[0]
                    for n in range(4)]
            # the same client to a local mailbox: LMTP, not the queue
            local = send_retrying(hp.port("mx"), 4, attempts=1)[0]
        in_a, in_b = queue_ids(smtpkit_bin, a), queue_ids(smtpkit_bin, b)
        assert in_a.isdisjoint(in_b)
        assert in_a | in_b == set(sent)
        assert len(in_a) == len(in_b) == 2, (in_a, in_b)
        assert in_a == a.ids() & set(sent) and in_b == b.ids() & set(sent)
        assert local not in in_a | in_b
        # the queue is still there after its host stops, for `smtpkit queue`
        assert a.srv.stop() == 0
        assert queue_ids(smtpkit_bin, a) == in_a
        assert b.srv.stop() == 0


def open_connections(port, tries):
    """Open `tries` connections from CLIENT through the balancer, one after
    the other, keeping each one that got the greeting; returns (the open
    sockets, the first reply line of each try, b"" when closed unanswered)."""
    kept, firsts = [], []
    for _ in range(tries):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(SEND_TIMEOUT)
        s.bind((CLIENT, 0))
        f = s.makefile("rb")
        try:
            s.connect(("127.0.0.1", port))
            line = f.readline()
        except ConnectionResetError:
            line = b""  # closed by the balancer
        firsts.append(line)
        if line.startswith(b"220 "):
            kept.append((s, f))
        else:
            f.close()
            s.close()
    return kept, firsts


def close_connections(kept):
    for s, f in kept:
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221 ")
        f.close()
        s.close()


def test_per_ip_limit_is_per_host(server, tmp_path):
    """connections_per_ip = 2 on each host. Each host counts only the
    connections it holds, so through a round-robin balancer one client
    gets 2 per host, 4 in all; with `balance source` every connection of
    a client goes to the same host and the limit is 2 again; a stick table
    in HAProxy makes one count for the whole cluster."""
    tries = 8
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        a, b = start_hosts(server, tmp_path, dv, limits={"connections_per_ip": 2})
        with HAProxy(tmp_path, {"mx": [a.backend(), b.backend()]}, balance="roundrobin") as hp:
            kept, firsts = open_connections(hp.port("mx"), tries)
            greeted = [x for x in firsts if x.startswith(b"220 ")]
            refused = [x for x in firsts if x.startswith(b"421 4.7.0 ")]
            assert len(greeted) == 4 and len(refused) == tries - 4, firsts
            close_connections(kept)
        for h in (a, b):
            # each host greeted 2 and refused the rest of what it was given
            h.srv.wait_log(rf"event=disconnect conn=\d+ peer={re.escape(CLIENT)} [^\n]*reason=limit",
                           count=(tries - 4) // 2)
            assert len(re.findall(rf"event=connect conn=\d+ peer={re.escape(CLIENT)} ",
                                  h.srv.log())) == tries // 2
        with HAProxy(tmp_path, {"mx": [a.backend(), b.backend()]}, balance="source") as hp:
            kept, firsts = open_connections(hp.port("mx"), 4)
            greeted = [x for x in firsts if x.startswith(b"220 ")]
            assert len(greeted) == 2, firsts
            assert all(x.startswith(b"421 4.7.0 ") for x in firsts[2:]), firsts
            close_connections(kept)
        # all four went to one host
        counts = [len(re.findall(rf"event=connect conn=\d+ peer={re.escape(CLIENT)} ",
                                 h.srv.log())) - tries // 2 for h in (a, b)]
        assert sorted(counts) == [0, 4], counts
        # or the balancer counts for the whole cluster: a stick table of
        # open connections per source, the third one closed by HAProxy
        # before any host sees it (so no 421: the client gets EOF)
        stick = ["stick-table type ip size 10k expire 10m store conn_cur",
                 "tcp-request connection track-sc0 src",
                 "tcp-request connection reject if { sc0_conn_cur gt 2 }"]
        with HAProxy(tmp_path, {"mx": [a.backend(), b.backend()]}, balance="roundrobin",
                     extra=stick) as hp:
            kept, firsts = open_connections(hp.port("mx"), 4)
            assert [x[:4] for x in firsts] == [b"220 ", b"220 ", b"", b""], firsts
            close_connections(kept)
        counts = [len(re.findall(rf"event=connect conn=\d+ peer={re.escape(CLIENT)} ",
                                 h.srv.log())) - tries // 2 for h in (a, b)]
        assert sorted(counts) == [1, 5], counts  # one more on each host
        for h in (a, b):
            assert h.srv.stop() == 0


def proxied_session(port, hosts, timeout=10.0):
    """A raw session from CLIENT through the balancer, greeting read; returns
    (socket, file, the host that serves it: found by the client's source
    port in the hosts' event=connect lines)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(SEND_TIMEOUT)
    s.bind((CLIENT, 0))
    s.connect(("127.0.0.1", port))
    f = s.makefile("rb")
    code, lines = read_reply(f)
    assert code == 220, lines
    pat = re.compile(rf"event=connect conn=\d+ peer={re.escape(CLIENT)} port={s.getsockname()[1]} ")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for h in hosts:
            if pat.search(h.srv.log()):
                return s, f, h
        time.sleep(0.05)
    raise AssertionError("no host logged the connection")


def command(s, f, line):
    s.sendall(line.encode() + b"\r\n")
    return read_reply(f)


def test_sigterm_one_host_fails_over_nothing_lost(server, tmp_path):
    """Host a gets SIGTERM while it holds an idle session, a message half
    sent, and a client sends N messages one after the other through the
    balancer. Host a answers the idle session 421 4.3.2, lets the message
    finish (shutdown_grace) with its 250, exits 0; HAProxy's health check
    marks it down and host b takes every later connection. A connection
    HAProxy cannot make to the stopping host it makes to the other (retries,
    option redispatch); the client told 421 sends again, as any MTA does,
    and host b takes it. In the end every message is in Dovecot exactly once.
    The client sends its first half while host a stops, and its second
    half once HAProxy has logged host a down."""
    with PrivateDovecot(tmp_path, users=USERS) as dv:
        a, b = start_hosts(server, tmp_path, dv)
        with HAProxy(tmp_path, {"mx": [a.backend(), b.backend()]}, check=True,
                     balance="roundrobin") as hp:
            port = hp.port("mx")
            # round robin: four sessions, two on each host
            sessions = [proxied_session(port, (a, b)) for _ in range(4)]
            on_a = [(s, f) for s, f, h in sessions if h is a]
            on_b = [(s, f) for s, f, h in sessions if h is b]
            assert len(on_a) == len(on_b) == 2
            (busy, busy_f), (idle, idle_f) = on_a
            assert command(idle, idle_f, "EHLO client.test")[0] == 250
            assert command(busy, busy_f, "EHLO client.test")[0] == 250
            assert command(busy, busy_f, "MAIL FROM:<carol@remote.test>")[0] == 250
            assert command(busy, busy_f, "RCPT TO:<alice@example.test>")[0] == 250
            assert command(busy, busy_f, "DATA")[0] == 354
            body = message(N)
            busy.sendall(body[:40])

            sent, errors, after_down = {}, [], []
            a_down = threading.Event()

            def client():
                try:
                    for n in range(N):
                        if n == N // 2:  # the second half once HAProxy knows
                            a_down.wait(timeout=30)
                        was_down = a_down.is_set()
                        qid, _ = send_retrying(port, n)
                        sent[n] = qid
                        if was_down:
                            after_down.append(qid)
                        time.sleep(0.05)
                except BaseException as e:  # reported by the main thread
                    errors.append(e)

            t = threading.Thread(target=client)
            t.start()
            deadline = time.monotonic() + 30
            while len(sent) < 5 and t.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert 5 <= len(sent) <= N // 2, (sent, errors)
            a.srv.send_signal(signal.SIGTERM)
            # the idle session is told at once; the message may finish
            code, lines = read_reply(idle_f)
            assert code == 421 and lines[0].startswith("421 4.3.2 "), lines
            a.srv.wait_log(r"event=shutdown signal=TERM ")
            busy.sendall(body[40:] + b".\r\n")
            code, lines = read_reply(busy_f)
            assert code == 250, lines
            busy_id = re.search(r"queued as ([0-9A-V]{20})", lines[0]).group(1)
            assert a.srv.proc.wait(timeout=30) == 0
            hp.wait_log(r"Server mx/s_mx_1 is DOWN", timeout=10)
            a_down.set()
            # the client of the idle session tries again: host b takes it
            retry_id, failures = send_retrying(port, N + 1)
            assert failures == [], failures
            t.join(timeout=120)
            assert not t.is_alive(), "the client did not finish in time"
            assert errors == [], errors
            for s, f in on_b:  # host b's sessions never noticed
                assert command(s, f, "NOOP")[0] == 250
                assert command(s, f, "QUIT")[0] == 221
            for s, f, _ in sessions:
                f.close()
                s.close()
        assert sorted(sent) == list(range(N))
        sent[N], sent[N + 1] = busy_id, retry_id
        inbox = wait_inbox(dv, N + 2)
        assert sorted(inbox) == list(range(N + 2)), sorted(inbox)
        dup = {n: len(m) for n, m in inbox.items() if len(m) != 1}
        assert dup == {}, f"delivered more than once: {dup}"
        for n, msgs in inbox.items():
            check_client_address(msgs[0], sent[n])
        ids_a, ids_b = a.ids(), b.ids()
        assert ids_a.isdisjoint(ids_b) and ids_a | ids_b == set(sent.values())
        assert busy_id in ids_a and retry_id in ids_b
        # once HAProxy knew a was gone, b took everything
        assert len(after_down) >= N // 2 and set(after_down) <= ids_b, (after_down, ids_b)
        assert b.srv.stop() == 0
