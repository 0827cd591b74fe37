"""`smtpkit send` against aiosmtpd and scripted servers on loopback: the
message that arrives (parsed with Python's email package), TLS and AUTH,
PIPELINING and BDAT on the wire, per-recipient reports and exit statuses."""

import base64
import email
import email.policy
import os
import time

import pytest

from fakeservers import (
    Aio,
    PasswordCheck,
    SMTPKIT,
    ScriptedSMTP,
    free_port,
    make_cert,
    run_smtpkit,
    server_tls_context,
    text,
)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("cert")))


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_send_basic_message_arrives_intact():
    with Aio() as srv:
        cp = run_smtpkit(
            "send", "--server", f"127.0.0.1:{srv.port}", "--from", "Alice <alice@example.org>",
            "--to", "bob@example.net", "--to", "Carol <carol@example.net>",
            "--cc", "dave@example.net", "--bcc", "eve@example.net", "--subject", "Hello there",
            "--header", "X-Test-Run: 42", "--body", "line one\n.starts with a dot\n..two dots\nend")
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        assert len(srv.handler.messages) == 1
        m = srv.handler.messages[0]
    assert m["mail_from"] == "alice@example.org"
    assert m["rcpt_tos"] == ["bob@example.net", "carol@example.net", "dave@example.net",
                             "eve@example.net"]
    msg = parse(m["content"])
    assert msg["From"] == "Alice <alice@example.org>"
    assert msg["To"] == "bob@example.net, Carol <carol@example.net>"
    assert msg["Cc"] == "dave@example.net"
    assert msg["Bcc"] is None
    assert "eve@example.net" not in m["content"].decode()
    assert msg["Subject"] == "Hello there"
    assert msg["X-Test-Run"] == "42"
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Date"].datetime is not None
    # Dot-stuffing was undone by the server: the lines are as written,
    # with CRLF line ends.
    body = m["content"].split(b"\r\n\r\n", 1)[1]
    assert body == b"line one\r\n.starts with a dot\r\n..two dots\r\nend\r\n"
    # SIZE was declared (aiosmtpd offers SIZE) and is the real size.
    size = [o for o in m["mail_options"] if o.startswith("SIZE=")]
    assert size and int(size[0][5:]) == len(m["content"])
    # Report: each recipient's reply, then the final one.
    assert "RCPT TO:<eve@example.net>  250 OK" in out
    assert "Message accepted for 4 of 4 recipients: 250 2.0.0 OK queued" in out


def test_send_utf8_headers_and_8bitmime():
    subject = "Grüße aus Köln – ein längerer Betreff, der über die Zeilengrenze hinausgeht 😀"
    with Aio() as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from",
                         "Jörg Müller <joerg@example.org>", "--to", "b@example.net",
                         "--subject", subject, "--body", "Hallo Jörg\n")
        assert cp.returncode == 0, text(cp)
        m = srv.handler.messages[0]
    head = m["content"].split(b"\r\n\r\n", 1)[0]
    assert all(b < 0x80 for b in head)  # headers are ASCII on the wire (RFC 2047)
    msg = parse(m["content"])
    assert msg["Subject"] == subject
    assert str(msg["From"]) == "Jörg Müller <joerg@example.org>"
    assert "BODY=8BITMIME" in m["mail_options"]
    assert msg["Content-Transfer-Encoding"] == "8bit"
    assert msg.get_content().replace("\r\n", "\n") == "Hallo Jörg\n"


def test_send_without_8bitmime_uses_quoted_printable():
    ehlo = ["PIPELINING", "SIZE 1048576"]
    with ScriptedSMTP(ehlo=ehlo) as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--body", "Grüße\n")
        assert cp.returncode == 0, text(cp)
        raw = srv.messages[0]
    assert all(b < 0x80 for b in raw)
    msg = parse(raw)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.get_content().replace("\r\n", "\n") == "Grüße\n"
    mail = [c for c in srv.commands if c.startswith("MAIL")][0]
    assert "BODY=8BITMIME" not in mail


def test_send_attachments(tmp_path):
    data = os.urandom(5000)
    binf = tmp_path / "blob.bin"
    binf.write_bytes(data)
    txt = tmp_path / "Résumé.txt"
    txt.write_text("plain text attachment\n")
    with Aio() as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--subject", "files", "--body", "see attached",
                         "--attach", str(binf), "--attach", str(txt))
        assert cp.returncode == 0, text(cp)
        raw = srv.handler.messages[0]["content"]
    assert max(len(l) for l in raw.split(b"\r\n")) <= 78
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_attachments())
    assert [p.get_filename() for p in parts] == ["blob.bin", "Résumé.txt"]
    assert parts[0].get_content() == data
    assert parts[0].get_content_type() == "application/octet-stream"
    assert parts[1].get_content_type() == "text/plain"
    assert msg.get_body(("plain",)).get_content().strip() == "see attached"


def test_send_body_from_stdin_and_file(tmp_path):
    f = tmp_path / "body.txt"
    f.write_bytes(b"from a file\r\nwith CRLF\nand LF\n")
    with Aio() as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", input_bytes=b"from stdin\n.\nafter a lone dot\n")
        assert cp.returncode == 0, text(cp)
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--body-file", str(f))
        assert cp.returncode == 0, text(cp)
        b1 = srv.handler.messages[0]["content"].split(b"\r\n\r\n", 1)[1]
        b2 = srv.handler.messages[1]["content"].split(b"\r\n\r\n", 1)[1]
    # A lone "." line in the body does not end the data early.
    assert b1 == b"from stdin\r\n.\r\nafter a lone dot\r\n"
    assert b2 == b"from a file\r\nwith CRLF\r\nand LF\r\n"


def test_starttls_auth_plain_password_never_shown(cert):
    crt, key = cert
    check = PasswordCheck("alice", "s3cret-pässword")
    with Aio(tls_context=server_tls_context(crt, key), auth=check) as srv:
        cp = run_smtpkit("send", "-v", "--server", f"localhost:{srv.port}", "--starttls",
                         "--cafile", crt, "--auth", "alice", "--from", "alice@example.org",
                         "--to", "b@example.net", "--body", "hi",
                         env={"SMTPKIT_PASSWORD": "s3cret-pässword"})
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        assert len(srv.handler.messages) == 1
    assert check.seen == ["PLAIN"]
    assert "C: AUTH PLAIN <redacted>" in out
    assert "TLS established" in out
    secret = "s3cret-pässword"
    b64 = base64.b64encode(b"\0alice\0" + secret.encode()).decode()
    for s in (secret, b64, b64[:12]):
        assert s not in out and s not in err


def test_auth_login_and_wrong_password(cert):
    crt, key = cert
    check = PasswordCheck("bob", "right")
    with Aio(tls_context=server_tls_context(crt, key), auth=check,
             auth_exclude_mechanism=["PLAIN"]) as srv:
        cp = run_smtpkit("send", "-v", "--server", f"127.0.0.1:{srv.port}", "--starttls",
                         "--insecure", "--auth", "bob", "--from", "bob@example.org", "--to",
                         "c@example.net", "--body", "x", env={"SMTPKIT_PASSWORD": "right"})
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        assert "C: AUTH LOGIN" in out
        assert out.count("C: <redacted>") == 2
        assert base64.b64encode(b"right").decode() not in out

        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--starttls", "--insecure",
                         "--auth", "bob", "--from", "bob@example.org", "--to", "c@example.net",
                         "--body", "x", env={"SMTPKIT_PASSWORD": "wrong"})
        out, err = text(cp)
        assert cp.returncode == 1, out + err
        assert "authentication as bob failed: 535" in err
        assert len(srv.handler.messages) == 1


def test_auth_refused_without_tls():
    with Aio() as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--auth", "u", "--from",
                         "a@example.org", "--to", "b@example.net", "--body", "x",
                         env={"SMTPKIT_PASSWORD": "p"})
        out, err = text(cp)
        assert cp.returncode == 2
        assert "unencrypted" in err
        assert srv.handler.messages == []


def test_no_password_available_is_usage_error():
    # No SMTPKIT_PASSWORD and no terminal: a clear message, no hang.
    cp = run_smtpkit("send", "--server", "127.0.0.1:1", "--auth", "u", "--from", "a@example.org",
                     "--to", "b@example.net", "--body", "x", timeout=20)
    assert cp.returncode in (2,)
    assert "password" in text(cp)[1]


def test_starttls_required_but_missing_and_bad_cert(cert):
    with Aio() as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--starttls", "--from",
                         "a@example.org", "--to", "b@example.net", "--body", "x")
        assert cp.returncode == 4
        assert "does not offer STARTTLS" in text(cp)[1]
    crt, key = cert
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--starttls", "--from",
                         "a@example.org", "--to", "b@example.net", "--body", "x")
        assert cp.returncode == 4, text(cp)
        assert srv.handler.messages == []
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--starttls", "--insecure",
                         "--from", "a@example.org", "--to", "b@example.net", "--body", "x")
        assert cp.returncode == 0, text(cp)
        assert len(srv.handler.messages) == 1


def test_implicit_tls_send(cert):
    crt, key = cert
    with Aio(implicit_tls=server_tls_context(crt, key)) as srv:
        cp = run_smtpkit("send", "--tls", "--cafile", crt, "--server", f"localhost:{srv.port}",
                         "--from", "a@example.org", "--to", "b@example.net", "--body", "x")
        assert cp.returncode == 0, text(cp)
        assert len(srv.handler.messages) == 1


def test_pipelining_sends_mail_rcpt_data_in_one_go():
    with ScriptedSMTP(mail_delay=0.3) as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--to", "c@example.net", "--body", "x")
        assert cp.returncode == 0, text(cp)
        # While the server sat on MAIL, both RCPTs and DATA had already arrived.
        assert b"RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n" == srv.after_mail
        assert len(srv.messages) == 1


def test_no_pipelining_when_not_offered():
    with ScriptedSMTP(mail_delay=0.3, ehlo=["SIZE 100000"]) as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--body", "x")
        assert cp.returncode == 0, text(cp)
        assert srv.after_mail == b""  # the client waited for the MAIL reply
        assert len(srv.messages) == 1


def test_bdat_when_chunking_offered():
    body = "".join(f"line {i} .\n.dot\n" for i in range(6000))  # > 64 KiB: several chunks
    with ScriptedSMTP() as srv:
        cp = run_smtpkit("send", "-v", "--bdat", "--server", f"127.0.0.1:{srv.port}", "--from",
                         "a@example.org", "--to", "b@example.net", "--body", body, timeout=60)
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        assert not any(c == "DATA" for c in srv.commands)
        bdats = [c for c in srv.commands if c.startswith("BDAT")]
        assert len(bdats) >= 2 and bdats[-1].endswith(" LAST")
        assert not any(c.endswith("LAST") for c in bdats[:-1])
        raw = srv.messages[0]
    # BDAT carries the message as it is: no dot-stuffing, CRLF line ends.
    assert raw.split(b"\r\n\r\n", 1)[1] == body.replace("\n", "\r\n").encode()
    # Without CHUNKING --bdat falls back to DATA with a note.
    with ScriptedSMTP(ehlo=["PIPELINING"]) as srv:
        cp = run_smtpkit("send", "--bdat", "--server", f"127.0.0.1:{srv.port}", "--from",
                         "a@example.org", "--to", "b@example.net", "--body", "x")
        out, _ = text(cp)
        assert cp.returncode == 0 and "does not offer CHUNKING" in out
        assert "DATA" in srv.commands


def rcpt_by_prefix(addr):
    if addr.startswith("perm"):
        return "550 5.1.1 No such user"
    if addr.startswith("temp"):
        return "450 4.2.1 Mailbox busy, try later"
    return "250 2.1.5 OK"


@pytest.mark.parametrize("pipelining", [True, False])
def test_recipient_results_and_exit_status(pipelining):
    ehlo = ["PIPELINING"] if pipelining else []
    with ScriptedSMTP(rcpt=rcpt_by_prefix, ehlo=ehlo) as srv:
        port = srv.port

        def send(*to):
            args = ["send", "--server", f"127.0.0.1:{port}", "--from", "a@example.org",
                    "--body", "x"]
            for t in to:
                args += ["--to", t]
            return run_smtpkit(*args)

        cp = send("ok@example.net", "perm@example.net")
        out, err = text(cp)
        assert cp.returncode == 1, out + err
        assert "RCPT TO:<perm@example.net>  550 5.1.1 No such user" in out
        assert "Message accepted for 1 of 2 recipients" in out
        assert len(srv.messages) == 1

        cp = send("ok@example.net", "temp@example.net")
        assert cp.returncode == 75, text(cp)
        assert len(srv.messages) == 2

        cp = send("perm@example.net")
        out, err = text(cp)
        assert cp.returncode == 1
        assert "no recipient was accepted" in err
        assert len(srv.messages) == 2  # nothing delivered
        cp = send("temp@example.net")
        assert cp.returncode == 75


def test_pipelined_data_accepted_without_recipients_is_ended_empty():
    # A server that answers 354 although every RCPT failed: the client must
    # end the data at once (RFC 2920 3.1) and deliver nothing.
    with ScriptedSMTP(rcpt=rcpt_by_prefix, lax_data=True) as srv:
        cp = run_smtpkit("send", "-v", "--server", f"127.0.0.1:{srv.port}", "--from",
                         "a@example.org", "--to", "perm@example.net", "--body", "secret body")
        out, err = text(cp)
        assert cp.returncode == 1, out + err
        assert srv.messages == [b""]
        assert "ending DATA empty" in out


@pytest.mark.parametrize(
    "kw,status,needle",
    [
        ({"data_reply": "554 5.6.0 Message refused"}, 1, "554 5.6.0 Message refused"),
        ({"data_reply": "451 4.3.0 Local error"}, 75, "451 4.3.0 Local error"),
        ({"mail_reply": "550 5.7.1 Sender rejected"}, 1, "refused the sender"),
        ({"mail_reply": "421 4.7.0 Closing"}, 75, "refused the sender"),
        ({"greeting": b"554 5.7.1 Go away\r\n"}, 1, "refuses service"),
    ],
)
def test_refusals_map_to_exit_status(kw, status, needle):
    with ScriptedSMTP(**kw) as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--body", "x")
        out, err = text(cp)
        assert cp.returncode == status, out + err
        assert needle in out + err


def test_send_connection_refused_and_usage():
    port = free_port()
    cp = run_smtpkit("send", "--server", f"127.0.0.1:{port}", "--from", "a@example.org", "--to",
                     "b@example.net", "--body", "x")
    assert cp.returncode == 3
    assert f"could not connect to 127.0.0.1:{port}: connection refused" in text(cp)[1]
    base = ["send", "--server", f"127.0.0.1:{port}"]
    for extra in (["--to", "b@example.net", "--body", "x"],  # no --from
                  ["--from", "a@example.org", "--body", "x"],  # no recipient
                  ["--from", "a@example.org", "--to", "not-an-address", "--body", "x"],
                  ["--from", "a@example.org", "--to", "b@example.net", "--body", "x",
                   "--attach", "/nonexistent/file"],
                  ["--from", "a@example.org", "--to", "b@example.net", "--tls", "--starttls"]):
        cp = run_smtpkit(*base, *extra)
        assert cp.returncode == 2, (extra, text(cp))


def test_header_injection_refused():
    with Aio() as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--subject", "hi\r\nBcc: victim@example.com",
                         "--body", "x")
        assert cp.returncode == 2, text(cp)
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--header", "X-A: b\nX-Injected: 1",
                         "--body", "x")
        assert cp.returncode == 2, text(cp)
        assert srv.handler.messages == []


def test_password_prompt_on_terminal_without_echo(cert):
    """With no SMTPKIT_PASSWORD the password is asked on /dev/tty, not echoed."""
    import pty
    import select

    crt, key = cert
    check = PasswordCheck("tty", "typed-secret")
    with Aio(tls_context=server_tls_context(crt, key), auth=check) as srv:
        env = {k: v for k, v in os.environ.items() if k != "SMTPKIT_PASSWORD"}
        pid, fd = pty.fork()
        if pid == 0:  # child: the pty is its controlling terminal
            os.execve(SMTPKIT, [SMTPKIT, "send", "--server",
                                      f"127.0.0.1:{srv.port}", "--starttls", "--insecure",
                                      "--auth", "tty", "--from", "t@example.org", "--to",
                                      "u@example.net", "--body", "x"], env)
        seen = b""
        deadline = time.monotonic() + 20
        typed = False
        status = None
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                seen += chunk
                if not typed and b"Password for tty:" in seen:
                    os.write(fd, b"typed-secret\n")
                    typed = True
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
                break
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
        assert typed, seen
        assert status == 0, seen
        assert b"typed-secret" not in seen  # no echo
        assert len(srv.handler.messages) == 1
