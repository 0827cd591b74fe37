"""AUTH and submission rules on the wire (RFC 4954, RFC 6409, RFC 3207):
the reply codes for every misuse, the delayed reply to a failed AUTH, the
per-connection and per-address failure limits, and the sender check."""

import signal
import time

from tls_helpers import USERS, Dialog, make_passwd, plain_auth

ALICE = plain_auth("alice@example.test", "wonderland")
BAD = plain_auth("alice@example.test", "not-the-password")


def tls_dialog(srv, port=None):
    d = Dialog(srv.host, port or srv.sub_port)
    d.ehlo()
    d.starttls(srv.ssl_context())
    return d


def test_auth_over_plaintext_on_mx_is_refused(tls_server):
    srv = tls_server()
    with Dialog(srv.host, srv.port) as d:
        ext = d.ehlo()
        assert "STARTTLS" in ext
        assert not any(e.startswith("AUTH") for e in ext)  # not advertised without TLS
        code, lines = d.cmd("AUTH PLAIN " + ALICE)
        assert code == 538 and lines[0].startswith("538 5.7.11"), lines
        # and the session goes on
        assert d.cmd("NOOP")[0] == 250


def test_auth_before_ehlo_and_during_a_transaction(tls_server):
    srv = tls_server()
    with Dialog(srv.host, srv.sub_port) as d:
        d.ehlo()
        d.starttls(srv.ssl_context())
        # RFC 3207 4.2: after TLS the client must say EHLO again
        code, lines = d.cmd("AUTH PLAIN " + ALICE)
        assert code == 503, lines
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + ALICE)[0] == 235
        assert d.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        code, lines = d.cmd("AUTH PLAIN " + ALICE)  # RFC 4954 4: not during a transaction
        assert code == 503 and lines[0].startswith("503 5.5.1"), lines
        assert d.cmd("RSET")[0] == 250
        code, lines = d.cmd("AUTH PLAIN " + ALICE)  # RFC 4954 4: only once per session
        assert code == 503, lines


def test_submission_requires_tls_and_auth_for_mail(tls_server):
    srv = tls_server()
    with Dialog(srv.host, srv.sub_port) as d:
        d.ehlo()
        code, lines = d.cmd("MAIL FROM:<alice@example.test>")
        assert code == 530 and lines[0].startswith("530 5.7.0"), lines
        d.starttls(srv.ssl_context())
        d.ehlo()
        code, lines = d.cmd("MAIL FROM:<alice@example.test>")
        assert code == 530 and lines[0].startswith("530 5.7.0"), lines
        assert d.cmd("AUTH PLAIN " + ALICE)[0] == 235
        assert d.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        assert d.cmd("RCPT TO:<bob@example.test>")[0] == 250


def test_wrong_password_is_535_after_the_delay(tls_server):
    srv = tls_server(limits={"auth_failure_delay_ms": 600})
    with tls_dialog(srv) as d:
        d.ehlo()
        t0 = time.monotonic()
        code, lines = d.cmd("AUTH PLAIN " + BAD)
        elapsed = time.monotonic() - t0
        assert code == 535 and lines[0].startswith("535 5.7.8"), lines
        assert elapsed >= 0.55, elapsed
        # unknown user: same reply, same delay
        t0 = time.monotonic()
        code, _ = d.cmd("AUTH PLAIN " + plain_auth("mallory", "wonderland"))
        assert code == 535 and time.monotonic() - t0 >= 0.55
        # a success is not delayed
        t0 = time.monotonic()
        assert d.cmd("AUTH PLAIN " + ALICE)[0] == 235
        assert time.monotonic() - t0 < 0.5
    log = srv.log()
    assert "wonderland" not in log and "not-the-password" not in log


def test_delay_does_not_stall_other_clients(tls_server):
    srv = tls_server(limits={"auth_failure_delay_ms": 1500})
    with tls_dialog(srv) as slow:
        slow.ehlo()
        slow.send("AUTH PLAIN " + BAD + "\r\n")
        time.sleep(0.1)  # the failure is now being held
        t0 = time.monotonic()
        with Dialog(srv.host, srv.port) as other:
            assert other.cmd("NOOP")[0] == 250
        assert time.monotonic() - t0 < 1.0  # the loop kept serving
        code, _ = slow.reply()
        assert code == 535


def test_per_connection_limit_closes_with_421(tls_server):
    srv = tls_server(limits={"auth_failures_per_connection": 2, "auth_failure_delay_ms": 100})
    with tls_dialog(srv) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + BAD)[0] == 535
        code, lines = d.cmd("AUTH PLAIN " + BAD)
        assert code == 535
        code, lines = d.reply()
        assert code == 421 and lines[0].startswith("421 4.7.0"), lines
        assert d.at_eof()
    srv.wait_log(r"event=auth-limit conn=\d+ peer=127\.0\.0\.1 failures=2")
    srv.wait_log(r"reason=auth-failures")


def test_pipelined_guesses_get_no_extra_checks(tls_server):
    srv = tls_server(limits={"auth_failures_per_connection": 2, "auth_failure_delay_ms": 100})
    with tls_dialog(srv) as d:
        d.ehlo()
        # five guesses in one write; the last one is even right
        d.send(("AUTH PLAIN " + BAD + "\r\n") * 4 + "AUTH PLAIN " + ALICE + "\r\n")
        codes = []
        while True:
            code, _ = d.reply()
            if code is None:
                break
            codes.append(code)
        assert codes[:2] == [535, 535]
        assert 235 not in codes  # nothing checked after the limit
        assert codes[-1] == 421
    assert srv.log().count("event=auth-failed") == 2


def test_address_budget_answers_454(tls_server):
    srv = tls_server(limits={"auth_failures": 3, "auth_failure_window": 3600,
                             "auth_failures_per_connection": 10, "auth_failure_delay_ms": 50})
    with tls_dialog(srv) as d:
        d.ehlo()
        for _ in range(3):
            assert d.cmd("AUTH PLAIN " + BAD)[0] == 535
    with tls_dialog(srv) as d:
        d.ehlo()
        # budget spent: even the right password is not checked
        code, lines = d.cmd("AUTH PLAIN " + ALICE)
        assert code == 454 and lines[0].startswith("454 4.7.0"), lines
        assert d.cmd("MAIL FROM:<alice@example.test>")[0] == 530
    srv.wait_log(r"why=address-blocked")


def test_sender_must_match_login(tls_server):
    srv = tls_server(extra="sender_must_match_login = true;")
    with tls_dialog(srv) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + ALICE)[0] == 235
        code, lines = d.cmd("MAIL FROM:<bob@example.test>")
        assert code == 553 and lines[0].startswith("553 5.7.1"), lines
        assert d.cmd("MAIL FROM:<ALICE@example.test>")[0] == 553  # local part exact
        assert d.cmd("MAIL FROM:<alice@EXAMPLE.test>")[0] == 250  # domain any case
        assert d.cmd("RSET")[0] == 250
        assert d.cmd("MAIL FROM:<>")[0] == 250
    with tls_dialog(srv) as d:  # a bare user name owns its local part at local domains
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + plain_auth("bob", "builder"))[0] == 235
        assert d.cmd("MAIL FROM:<bob@example.test>")[0] == 250
        assert d.cmd("RSET")[0] == 250
        assert d.cmd("MAIL FROM:<bob@elsewhere.test>")[0] == 553
    # not applied to unauthenticated MX traffic
    with Dialog(srv.host, srv.port) as d:
        d.ehlo()
        assert d.cmd("MAIL FROM:<anyone@elsewhere.test>")[0] == 250


def test_password_file_reload(tls_server, smtpkit_bin, tmp_path):
    srv = tls_server()
    carol = plain_auth("carol", "c4rol")
    with tls_dialog(srv) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + carol)[0] == 535
    make_passwd(smtpkit_bin, tmp_path / "passwd", {**USERS, "carol": ("c4rol", "yescrypt")})
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=auth-reload passwd_file=\S+ users=3")
    with tls_dialog(srv) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + carol)[0] == 235
    # a broken file is not taken: carol keeps working
    (tmp_path / "passwd").write_text("carol {PLAIN}c4rol\n")
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=auth-reload-failed error=\"\S+:1: no ':' between user name and password")
    with tls_dialog(srv) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + carol)[0] == 235


def test_auth_failure_log_names_the_user_and_cannot_be_forged(tls_server):
    """event=auth-failed carries user=; a user name with spaces, quotes and
    a line break cannot add a field or a line to the log."""
    srv = tls_server(limits={"auth_failures_per_connection": 5, "auth_failure_delay_ms": 50})
    forged = 'mallory why=ok result=235 "x"\r\nevent=auth result=235'
    with tls_dialog(srv) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + BAD)[0] == 535
        assert d.cmd("AUTH PLAIN " + plain_auth(forged, "pw"))[0] == 535
    srv.wait_log(r"event=auth-failed conn=\d+ peer=127\.0\.0\.1 user=alice@example\.test "
                 r"why=\S+ conn_failures=1\n")
    line = srv.wait_log(r"event=auth-failed conn=\d+ peer=127\.0\.0\.1 user=\S+ why=\S+ "
                        r"conn_failures=2\n")[0]
    assert "user=mallory?why=ok?result=235??x?" in line, line
    assert line.count(" why=") == 1 and line.count(" result=") == 0, line
    assert "event=auth result=235" not in srv.log()


def test_authenticated_mixed_message_goes_to_maildir_and_queue(tls_server, tmp_path):
    """Submission by an authenticated user to a local and two remote
    recipients: one 250 naming one id, the Maildir copy and the queued copy
    with an envelope naming both remote recipients."""
    srv = tls_server()
    with tls_dialog(srv) as d:
        d.ehlo()
        assert d.cmd("AUTH PLAIN " + ALICE)[0] == 235
        assert d.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        for rcpt in ("bob@example.test", "one@remote.test", "two@elsewhere.test"):
            assert d.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
        assert d.cmd("DATA")[0] == 354
        code, lines = d.cmd("Subject: hi\r\n\r\nbody\r\n.")
        assert code == 250, lines
    mid = lines[-1].rsplit(" ", 1)[1]
    assert len(mid) == 20, lines
    queue = tmp_path / "queue"
    assert [p.name for p in (queue / "msg").iterdir()] == [mid]
    env = (queue / "env" / mid).read_text()
    assert "\nsender alice@example.test\n" in env, env
    rcpts = [line.split(" ")[1] for line in env.splitlines() if line.startswith("rcpt ")]
    assert rcpts == ["one@remote.test", "two@elsewhere.test"], env
    assert [p.name.split(".")[0] for p in srv.files("bob")] == [mid]
    assert (queue / "msg" / mid).read_bytes() == srv.files("bob")[0].read_bytes()
