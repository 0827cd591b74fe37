"""AUTH password checks run off the event loop (RFC 4954; the server's
rule that the loop never blocks): while many slow password hashes are being
computed, another client's NOOP is still answered, and a client that leaves
while its password is being checked leaves the server intact.

The hash is made deliberately slow (SHA-512-crypt with enough rounds for
a few tenths of a second per check). Nothing here asserts how fast the
server is: the test checks the order in which replies arrive."""

import select
import socket
import ssl
import struct
import subprocess
import time

from tls_helpers import USERS, Dialog, make_passwd, plain_auth

N_AUTH = 20
TARGET_SECONDS = 0.3  # one check; calibrated below


def slow_hash_line(smtpkit_bin, user, password):
    """A passwd line whose check takes about TARGET_SECONDS: hash once with
    a known number of rounds, then scale the rounds to the target."""

    def make(rounds):
        t0 = time.monotonic()
        r = subprocess.run([smtpkit_bin, "passwd", "--stdin", "--scheme", "sha512-crypt",
                            "--cost", str(rounds), user],
                           input=password.encode() + b"\n", capture_output=True, timeout=60,
                           check=True)
        return r.stdout.decode().strip(), time.monotonic() - t0

    probe = 200000
    _, took = make(probe)
    rounds = int(probe * TARGET_SECONDS / max(took, 0.001))
    rounds = max(20000, min(rounds, 20000000))
    line, _ = make(rounds)
    assert "$6$rounds=" in line, line
    return line, rounds


def slow_server(tls_server, smtpkit_bin, tmp_path):
    srv = tls_server(limits={"connections_per_ip": 50}, start=False)
    line, rounds = slow_hash_line(smtpkit_bin, "slow@example.test", "tortoise")
    passwd = tmp_path / "passwd"
    passwd.write_text(passwd.read_text() + line + "\n")
    srv.start()
    return srv, rounds


def test_slow_password_checks_do_not_stall_other_sessions(tls_server, smtpkit_bin, tmp_path):
    srv, rounds = slow_server(tls_server, smtpkit_bin, tmp_path)
    ctx = srv.ssl_context()
    auths = [Dialog(srv.host, srv.smtps_port, implicit_tls=ctx, timeout=60)
             for _ in range(N_AUTH)]
    other = Dialog(srv.host, srv.port, timeout=60)
    try:
        for d in auths:
            d.ehlo()
        other.ehlo()
        good = plain_auth("slow@example.test", "tortoise")
        for d in auths:
            d.send("AUTH PLAIN " + good + "\r\nNOOP\r\n")
        other.send("NOOP\r\n")

        # Collect replies in arrival order from every socket.
        events = []  # (time, who, code)
        socks = {d.sock: i for i, d in enumerate(auths)}
        socks[other.sock] = "other"
        want = {i: 2 for i in range(N_AUTH)}  # 235, then the pipelined NOOP's 250
        want["other"] = 1
        t0 = time.monotonic()
        deadline = t0 + 120
        while any(want.values()) and time.monotonic() < deadline:
            ready, _, _ = select.select(list(socks), [], [], 1.0)
            for s in ready:
                who = socks[s]
                d = other if who == "other" else auths[who]
                code, lines = d.reply()
                assert code is not None, (who, lines)
                events.append((time.monotonic() - t0, who, code))
                want[who] -= 1
                # more replies may already be read (or held by TLS)
                while want[who] and (b"\r\n" in d.buf or
                                     (isinstance(d.sock, ssl.SSLSocket) and d.sock.pending())):
                    code, lines = d.reply()
                    events.append((time.monotonic() - t0, who, code))
                    want[who] -= 1
                if not want[who]:
                    del socks[s]
        assert not any(want.values()), events
        order = [(who, code) for _, who, code in events]
        # every AUTH succeeded, and its pipelined NOOP came after its 235
        for i in range(N_AUTH):
            mine = [code for who, code in order if who == i]
            assert mine == [235, 250], (i, mine)
        auth_times = [t for t, who, code in events if who != "other" and code == 235]
        noop_time = next(t for t, who, _ in events if who == "other")
        before = sum(1 for t in auth_times if t < noop_time)
        print(f"rounds={rounds} noop_reply_at={noop_time:.3f}s "
              f"auth_replies_before_noop={before}/{N_AUTH} "
              f"first_235_at={min(auth_times):.3f}s last_235_at={max(auth_times):.3f}s")
        # The other session was answered while the checks were still running.
        assert noop_time < max(auth_times), events
        assert before < N_AUTH, events
    finally:
        for d in auths:
            d.close()
        other.close()
    srv.wait_log(r"event=auth conn=\d+ peer=\S+ mech=PLAIN user=slow@example\.test result=235", count=N_AUTH)


def test_client_gone_while_its_password_is_checked(server, smtpkit_bin, tmp_path):
    # Plain TCP (AUTH allowed without TLS on this listener), so that a reset
    # reaches the server as the I/O error it is.
    passwd = tmp_path / "passwd"
    make_passwd(smtpkit_bin, passwd, USERS)
    line, _ = slow_hash_line(smtpkit_bin, "slow@example.test", "tortoise")
    passwd.write_text(passwd.read_text() + line + "\n")
    srv = server(listener="auth = true; auth_requires_tls = false;",
                 extra=f'passwd_file = "{passwd}";', limits={"auth_failure_delay_ms": 200})
    good = plain_auth("slow@example.test", "tortoise")
    bad = plain_auth("slow@example.test", "hare")
    for cred in (good, bad):
        d = Dialog(srv.host, srv.port)
        d.ehlo()
        d.send("AUTH PLAIN " + cred + "\r\n")
        time.sleep(0.05)  # the check is now running
        d.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        d.close()  # a reset: gone before the verdict
    # The connection is freed only once its check is done; both verdicts
    # are logged for clients that are no longer there.
    who = r"event=auth conn=\d+ peer=\S+ mech=PLAIN user=slow@example\.test"
    srv.wait_log(who + " result=235 reason=client-gone")
    srv.wait_log(who + " result=535 reason=client-gone")
    srv.wait_log(r"event=disconnect conn=\d+ peer=127\.0\.0\.1 reason=io-error", count=2)
    # ... and the server goes on: a full AUTH on a new connection works.
    with Dialog(srv.host, srv.port, timeout=30) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + good)[0] == 235
        assert d.cmd("MAIL FROM:<slow@example.test>")[0] == 250
    assert srv.stop() == 0
    assert "tortoise" not in srv.log() and "hare" not in srv.log()


def test_tls_client_closing_during_the_check_still_ends(tls_server, smtpkit_bin, tmp_path):
    """Over TLS a client's close (FIN or reset) arrives as an end of input
    while the check runs: the verdict is still sent, and the connection then
    ends at once instead of staying open until shutdown."""
    srv, _ = slow_server(tls_server, smtpkit_bin, tmp_path)
    ctx = srv.ssl_context()
    good = plain_auth("slow@example.test", "tortoise")
    for reset in (False, True):
        d = Dialog(srv.host, srv.smtps_port, implicit_tls=ctx)
        d.ehlo()
        d.send("AUTH PLAIN " + good + "\r\n")
        if reset:
            d.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        d.close()
    srv.wait_log(r"event=disconnect conn=\d+ peer=127\.0\.0\.1 reason=eof last_reply=235",
                 count=2)
    assert srv.stop() == 0
