"""The server under hostile or unlucky conditions: clients that vanish in
the middle of a message, idle clients (421 4.4.2, RFC 5321 4.5.3.2), too
many connections from one address (421 4.7.0), binary junk (500s, then 421
after the error limit), 200 concurrent senders, and a full disk (452)."""

import os
import re
import random
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from serve_helpers import split_trace


def test_disconnect_mid_data_leaves_nothing(server):
    srv = server()
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 5000)
    # the server notices the EOF and discards the message
    srv.wait_log(r"event=disconnect conn=2 .*reason=eof")
    assert srv.files("alice", "new") == []
    assert srv.files("alice", "tmp") == []
    assert list((srv.mail_root / ".spool").iterdir()) == []
    # and keeps serving
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["alice@example.test"], b"Subject: ok\r\n\r\nok\r\n") == {}
    assert len(srv.messages("alice")) == 1


def test_idle_timeout_421_442(server):
    srv = server(limits={"command_timeout": 1})
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        t0 = time.monotonic()
        code, lines = r.reply()  # nothing sent: the server gives up
        waited = time.monotonic() - t0
        assert code == 421 and lines[-1][4:9] == "4.4.2", lines
        assert 0.5 < waited < 5
        assert r.at_eof()
    srv.wait_log(r"event=disconnect conn=2 .*reason=timeout last_reply=421")


def test_data_timeout_421_442(server):
    srv = server(limits={"data_timeout": 1})
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: slow\r\n\r\nthen nothing")
        code, lines = r.reply()
        assert code == 421 and lines[-1][4:9] == "4.4.2", lines
        assert r.at_eof()
    assert srv.files("alice", "new") == [] and srv.files("alice", "tmp") == []


def test_connection_limit_per_ip_421_470(server):
    srv = server(limits={"connections_per_ip": 2})
    a = srv.raw()
    b = srv.raw()
    with srv.raw(greet=False) as c:
        # not the greeting, so it carries its enhanced code before any EHLO
        # (RFC 2034 4)
        code, lines = c.reply()
        assert code == 421 and "Too many connections from your address" in lines[-1], lines
        assert lines[-1].startswith("421 4.7.0 mx.example.test "), lines
        assert c.at_eof()
    # the two admitted sessions work, and a slot frees when one leaves
    assert a.cmd("NOOP")[0] == 250
    assert b.cmd("QUIT")[0] == 221
    b.close()
    srv.wait_log(r"event=disconnect conn=3 ")
    with srv.raw() as d:
        assert d.cmd("QUIT")[0] == 221
    a.close()
    srv.wait_log(r"reason=limit last_reply=421")


def test_total_connection_limit_421(server):
    srv = server(limits={"connections": 3, "connections_per_ip": 10})
    held = [srv.raw() for _ in range(3)]
    with srv.raw(greet=False) as extra:
        code, lines = extra.reply()
        assert code == 421 and "Too many connections, try again later" in lines[-1], lines
        assert lines[-1].startswith("421 4.7.0 "), lines
    for h in held:
        h.close()


@pytest.mark.parametrize("ehlo_first", [False, True], ids=["no-ehlo", "after-ehlo"])
def test_binary_junk_gets_500s_then_421(server, ehlo_first):
    srv = server(limits={"errors": 5})
    rnd = random.Random(5321)
    other = srv.raw()
    with srv.raw() as r:
        if ehlo_first:
            assert r.cmd("EHLO junk.test")[0] == 250
        replies = []
        try:
            for _ in range(50):
                junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
                r.send(junk.replace(b"\n", b"") + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us, as it should
        while True:
            try:
                code, lines = r.reply()
            except (ConnectionResetError, socket.timeout):
                break
            if code is None:
                break
            replies.append((code, lines))
        codes = [c for c, _ in replies]
        assert codes, "no reply at all"
        assert all(500 <= c < 600 for c in codes[:-1]), replies
        assert codes[-1] == 421, replies
        assert len(codes) <= 6  # errors = 5: the fifth 500 is followed by the 421
        # enhanced codes with or without EHLO (RFC 2034 4)
        assert all(ln[4:6] == "5." for _, lns in replies[:-1] for ln in lns), replies
        assert replies[-1][1][-1][4:9] == "4.7.0", replies
        assert r.at_eof()
    # another client was not disturbed
    assert other.cmd("EHLO other.test")[0] == 250
    assert other.cmd("QUIT")[0] == 221
    other.close()
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["bob@example.test"], b"Subject: ok\r\n\r\nok\r\n") == {}


def test_client_not_reading_replies_is_bounded(server):
    """A client that pipelines commands without reading the replies stops
    being read once its unsent replies reach the output limit; the server
    stays responsive to others."""
    srv = server(limits={"output_buffer": 4096, "input_buffer": 8192, "commands": 10000000})
    hog = socket.create_connection((srv.host, srv.port), timeout=10)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 10
    last_progress = time.monotonic()
    # send until the server has stopped taking bytes for 1.5 s (or 50 MB)
    while time.monotonic() < deadline and sent < 50_000_000:
        try:
            sent += hog.send(b"NOOP\r\n" * 1000)
            last_progress = time.monotonic()
        except BlockingIOError:
            if time.monotonic() - last_progress > 1.5:
                break
            time.sleep(0.05)
    # The kernel buffers fill up: the server stopped reading long before
    # 50 MB, so our sends block.
    assert sent < 50_000_000
    with srv.raw() as r:
        assert r.cmd("NOOP")[0] == 250
    hog.close()


def test_200_concurrent_senders_all_accounted_for(server):
    srv = server(limits={"connections": 1000, "connections_per_ip": 300})
    n = 200
    results = [None] * n
    barrier = threading.Barrier(n, timeout=30)

    def send(i):
        try:
            with smtplib.SMTP(srv.host, srv.port, timeout=60) as s:
                barrier.wait()
                body = b"Subject: load %d\r\nX-Token: tok-%05d\r\n\r\nbody %d\r\n" % (i, i, i)
                results[i] = s.sendmail("load@remote.test", ["alice@example.test"], body)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    errors = [r for r in results if r != {}]
    assert errors == []
    msgs = srv.messages("alice")
    assert len(msgs) == n
    tokens = sorted(split_trace(m)[1].split(b"X-Token: ")[1][:9] for m in msgs)
    assert tokens == [b"tok-%05d" % i for i in range(n)]
    srv.wait_log(r"event=message .* result=250", count=n)


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode(errors="replace").strip())
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_452_and_server_keeps_serving(small_tmpfs, server):
    srv = server(mail_root=str(small_tmpfs / "mail"))
    # fill the filesystem completely
    filler = small_tmpfs / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    big = b"Subject: too big for the disk\r\n\r\n" + (b"z" * 998 + b"\r\n") * 400
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        code, lines = r.cmd("DATA")
        if code == 354:
            r.send(big + b".\r\n")
            code, lines = r.reply()
        assert code == 452, lines
        assert r.cmd("QUIT")[0] == 221
    assert srv.files("alice", "new") == []
    # the log says which store step ran out of room
    err = srv.wait_log(r"event=store-error conn=\d+ [^\n]*")[0]
    assert re.search(r" result=nospace step=(begin|append|spool-fsync|maildir-create|link) "
                     r"path=\S+ errno=28 error=\"No space left on device\"$", err), err
    # other clients are still served, and mail flows again once there is room
    os.unlink(filler)
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["alice@example.test"], big) == {}
    assert len(srv.messages("alice")) == 1
    assert srv.stop() == 0


def read_all(sock, timeout=5):
    """Everything the server sends until it closes; raises on a reset."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_refused_client_that_talks_still_reads_its_421(server):
    """Over the connection limit, the 421 is followed by a lingering close
    (shutdown of our side, then reading what the client still sends): a
    client that talks before reading gets its 421, not a reset."""
    srv = server(limits={"connections_per_ip": 1})
    held = srv.raw()
    for _ in range(5):
        with socket.create_connection((srv.host, srv.port), timeout=5) as c:
            c.sendall(b"EHLO talker.test\r\n")
            time.sleep(0.1)  # the 421 is out and the server has closed its side
            c.sendall(b"MAIL FROM:<talker@remote.test>\r\n")
            time.sleep(0.1)
            data = read_all(c)
            assert data.startswith(
                b"421 4.7.0 mx.example.test Too many connections from your address"), data
    held.close()
    srv.wait_log(r"reason=limit last_reply=421", count=5)


def test_421_after_errors_reaches_a_client_that_keeps_sending(server):
    srv = server(limits={"errors": 2})
    with socket.create_connection((srv.host, srv.port), timeout=5) as c:
        # more than the server reads before it gives up: the rest is still
        # unread in its socket when it closes
        c.sendall(b"EHLO junk.test\r\nFROB\r\nFROB\r\n" + b"FROB\r\n" * 50000)
        time.sleep(0.2)
        data = read_all(c)
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"220 ") and lines[-2].startswith(b"421 4.7.0 "), data


def test_slow_command_line_hits_the_command_deadline(server):
    """One octet every 0.3 s never trips the idle timeout (30 s here); the
    command deadline (1 s for the whole line) does: 421 4.4.2."""
    srv = server(limits={"command_deadline": 1})
    with srv.raw() as r:
        assert r.cmd("EHLO slow.test")[0] == 250
        t0 = time.monotonic()
        sent = b""
        for b in b"NOOP but very very slowly\r\n":
            try:
                r.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += bytes([b])
            time.sleep(0.3)
            if time.monotonic() - t0 > 4:
                break
        code, lines = r.reply()
        assert code == 421 and lines[-1].startswith("421 4.4.2 "), (lines, sent)
        assert time.monotonic() - t0 < 4
    srv.wait_log(r"event=disconnect conn=2 .*reason=deadline last_reply=421")


@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_slow_message_hits_the_message_deadline(server, verb):
    """A message trickled in a line every 0.2 s: the data timeout (30 s)
    never fires, the message deadline (1 s) does; nothing is stored."""
    srv = server(limits={"message_deadline": 1})
    with srv.raw() as r:
        assert r.cmd("EHLO slow.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
        if verb == "DATA":
            assert r.cmd("DATA")[0] == 354
        else:
            r.send(b"BDAT 100000\r\n")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4:
            try:
                r.send(b"Subject: slow\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
            r.sock.settimeout(0)
            try:
                peek = r.sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                peek = b""
            r.sock.settimeout(10)
            if peek:
                break
        code, lines = r.reply()
        assert code == 421 and lines[-1].startswith("421 4.4.2 "), lines
        assert time.monotonic() - t0 < 4
    assert srv.files("alice", "new") == [] and srv.files("alice", "tmp") == []
    srv.wait_log(r"event=disconnect conn=2 .*reason=deadline")


def test_client_resetting_right_after_the_final_dot(server):
    """The client sends the final dot and resets the connection at once
    (SO_LINGER 0), again and again, so that some resets land while the
    message is being made durable. The server stays up; each message is
    stored once or not at all; each attempt has exactly one event=message
    line, result=250 exactly for the stored ones (with reason=client-gone
    when the client was gone before its 250), and a disconnect line whose
    messages= counter agrees."""
    import struct
    # connections whose commit is still running count towards the limit
    srv = server(limits={"connections_per_ip": 100})
    n = 40
    for i in range(n):
        with srv.raw() as r:
            assert r.cmd("EHLO racer.test")[0] == 250
            r.send(b"MAIL FROM:<racer@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
            assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
            r.send(b"Subject: race\r\nX-Token: race-%03d\r\n\r\nbody\r\n.\r\n" % i)
            # close at once with a reset (SO_LINGER 0)
            r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # still serving
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        assert s.sendmail("c@remote.test", ["bob@example.test"], b"Subject: ok\r\n\r\nok\r\n") == {}
    # every racing connection ends only once its commit has (the message
    # line comes first), which may be after the last client's disconnect
    for conn in range(2, n + 3):
        srv.wait_log(r"event=disconnect conn=%d " % conn)
    stored = {}
    for m in srv.messages("alice"):
        mid = re.search(rb"with ESMTP id ([A-Za-z0-9]+)\r\n", m).group(1).decode()
        token = re.search(rb"X-Token: (race-\d+)", m).group(1).decode()
        assert mid not in stored
        stored[mid] = token
    tokens = list(stored.values())
    assert len(tokens) == len(set(tokens)), "a message stored twice"
    assert srv.files("alice", "tmp") == []
    log = srv.log()
    accepted = gone = 0
    for conn in range(2, n + 2):
        lines = re.findall(r"event=message conn=%d peer=\S+ id=(\S+) .* result=(\S+)(?: reason=(\S+))?$"
                           % conn, log, re.M)
        assert len(lines) == 1, (conn, lines)
        mid, result, reason = lines[0]
        disc = re.search(r"event=disconnect conn=%d .* messages=(\d+) " % conn, log)
        assert disc, conn
        if result == "250":
            accepted += 1
            assert mid in stored, (conn, mid)
            assert disc.group(1) == "1"
            assert reason in ("", "client-gone"), reason
            gone += reason == "client-gone"
        else:
            assert (result, reason) == ("none", "disconnect"), lines
            assert mid not in stored
            assert disc.group(1) == "0"
    assert accepted == len(stored)
    # the reset lands while the commit runs (the server keeps reading then):
    # the path this test is about was taken
    assert gone > 0


def test_huge_pipelined_batch_is_answered_in_full(server):
    """30000 HELPs in one write ask for about 6 MB of replies, far over the
    session's 1 MiB output cap; a client that reads while it writes gets
    every reply, in order, then the 221: the shell feeds the session in
    small pieces and moves its replies out after each."""
    srv = server(limits={"commands": 100000, "input_buffer": 1 << 20})
    n = 30000
    with srv.raw(timeout=30) as r:
        assert r.cmd("EHLO batch.test")[0] == 250
        writer = threading.Thread(target=r.send, args=(b"HELP\r\n" * n + b"QUIT\r\n",))
        writer.start()
        codes = []
        for _ in range(n + 1):
            code, lines = r.reply()
            codes.append(code)
            if code != 214:
                break
        writer.join(30)
        assert codes.count(214) == n and codes[-1] == 221, codes[-3:]
        assert r.at_eof()
