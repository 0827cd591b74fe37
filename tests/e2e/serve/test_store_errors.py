"""A store step that fails is diagnosable from the log alone: besides the
event=message line (result=451/452), one event=store-error line names the
message id, the step that failed (begin, append, spool-fsync,
maildir-create, link, dir-fsync, queue-msg, queue-envelope, ...), the path
it worked on and the errno with its text (smtpkit-serve(1), LOG)."""

import os
import re

from serve_helpers import split_trace

MSG = b"Subject: store errors\r\n\r\nbody\r\n"


def send_one(srv, rcpt="alice@example.test"):
    """One message over a raw session: (reply code to DATA or to the end of
    data, lines)."""
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
        code, lines = r.cmd("DATA")
        if code == 354:
            r.send(MSG + b".\r\n")
            code, lines = r.reply()
        assert r.cmd("QUIT")[0] == 221
    return code, lines


def store_error(srv, conn):
    """The fields of connection conn's event=store-error line."""
    line = srv.wait_log(rf"event=store-error conn={conn} [^\n]*")[0]
    fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    return line, {k: v.strip('"') for k, v in fields.items()}


def test_unwritable_maildir_logs_the_link_step_and_errno(server):
    srv = server()
    new = srv.maildir("alice") / "new"
    os.chmod(new, 0o500)  # the server's user can no longer add an entry
    try:
        code, lines = send_one(srv)
    finally:
        os.chmod(new, 0o700)
    assert code == 451 and lines[0].startswith("451 4.3.0"), lines
    line, f = store_error(srv, 2)
    msg = srv.wait_log(r"event=message conn=2 [^\n]*result=451 reason=commit")[0]
    assert f"id={f['id']} " in msg, (line, msg)
    assert f["step"] == "link", line
    assert f["path"].startswith(f"{new}/{f['id']}."), line
    assert f["errno"] == "13" and f["error"] == "Permission denied", line
    assert f["result"] == "ioerr", line
    # the operator's fix works at once: the next message is delivered
    assert send_one(srv)[0] == 250
    assert len(srv.messages("alice")) == 1


def test_unreadable_maildir_logs_which_directory(server):
    """A Maildir the server cannot even enter: the step that looked at it
    says so, with the directory's path."""
    srv = server()
    box = srv.maildir("bob")
    os.chmod(box, 0o000)
    try:
        code, lines = send_one(srv, "bob@example.test")
    finally:
        os.chmod(box, 0o700)
    assert code == 451, lines
    line, f = store_error(srv, 2)
    assert f["step"] == "maildir-create", line
    assert f["path"].startswith(f"{box}/"), line
    assert f["errno"] == "13" and f["error"] == "Permission denied", line


def test_unwritable_spool_logs_the_begin_step(server):
    """The spool file cannot be created: DATA itself gets 451, and the log
    names the begin step and the spool directory."""
    srv = server()
    spool = srv.mail_root / ".spool"
    os.chmod(spool, 0o500)
    try:
        code, lines = send_one(srv)
    finally:
        os.chmod(spool, 0o700)
    assert code == 451 and lines[0].startswith("451 4.3.0"), lines
    line, f = store_error(srv, 2)
    assert f["step"] == "begin" and f["id"] == "-", line
    assert f["path"] == str(spool), line
    assert f["errno"] == "13" and f["error"] == "Permission denied", line
    # nothing was stored, and the next message is
    assert srv.messages("alice") == []
    assert send_one(srv)[0] == 250
    _, rest, _ = split_trace(srv.messages("alice")[0])
    assert rest == MSG


def test_no_store_error_line_for_a_delivered_message(server):
    srv = server()
    assert send_one(srv)[0] == 250
    srv.wait_log(r"event=message conn=2 [^\n]*result=250")
    assert "event=store-error" not in srv.log()
