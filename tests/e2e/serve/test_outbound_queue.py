"""The store's destination kinds end to end: a message for local and remote
recipients lands in the Maildir and in the outbound queue (relay_queue:
msg/<id> + env/<id>, docs/STORE.md) in one commit; the id of the 250, the
log line, the Received header and every file name is one string; the 250
means both copies are durable (kill -9 right after it loses nothing); a
failing queue leaves nothing in the Maildir either."""

import os
import re
import signal
import smtplib
import socket
import time
import urllib.parse

from serve_helpers import rfc822, split_trace

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"Subject: mixed\r\n"
       b"\r\n"
       b"to a local and two remote recipients\r\n")
ID = rb"[0-9A-V]{20}"


def parse_envelope(text):
    """A small independent reader of the envelope format: fields and rcpts."""
    lines = text.split("\n")
    assert lines[0] == "smtpkit-envelope 1", lines[0]
    assert lines[-2:] == ["end", ""], lines[-3:]

    def val(v):
        return "" if v == "-" else urllib.parse.unquote(v)

    fields, rcpts = {}, []
    for line in lines[1:-2]:
        key, rest = line.split(" ", 1)
        if key == "rcpt":
            v = rest.split(" ")
            assert len(v) == 10, line
            rcpts.append({"addr": val(v[0]), "orcpt": val(v[1]), "notify": val(v[2]),
                          "state": v[3], "attempts": int(v[4]), "next": int(v[5]),
                          "code": int(v[6]), "text": val(v[9])})
        else:
            assert " " not in rest, line
            fields[key] = val(rest)
    return fields, rcpts


def relay_server(server, tmp_path, extra=""):
    queue = tmp_path / "mail" / "queue"
    srv = server(aliases={"postmaster@example.test": ["alice@example.test"],
                          "team@example.test": ["bob@example.test", "far@remote.test"]},
                 extra=f'trusted_networks = [ "127.0.0.0/8" ];\nrelay_queue = "{queue}";\n'
                       # the store's view of the queue: no delivery agent
                       + "delivery = { enabled = false; };\n" + extra)
    return srv, queue


def send(srv, rcpts, body=MSG, sender="alice@example.test"):
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail(sender, ["BODY=8BITMIME"])[0] == 250
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code in (250, 251), (r, code, msg)
        code, text = s.data(body)
    return code, text


def test_local_and_two_remote_recipients_one_id(server, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    code, text = send(srv, ["alice@example.test", "carol@remote.test", "Dave@Other.Test",
                            "carol@remote.test"])
    assert code == 250, text
    m = re.fullmatch(rb"2\.0\.0 Ok: queued as (" + ID + rb")", text)
    assert m, text
    mid = m.group(1).decode()

    # the local copy: new/<id>.<host>,S=<size>
    local = srv.files("alice")
    assert len(local) == 1 and local[0].name.startswith(mid + "."), local
    stored = local[0].read_bytes()  # LF line ends: one spool file for every kind
    trace, rest, _ = split_trace(rfc822(stored))
    assert rest == MSG
    assert re.search(rb"\bid " + mid.encode() + rb"\b", trace), trace
    assert srv.files("bob") == []

    # the queued copy: msg/<id> is the same bytes, env/<id> names both
    # remote recipients once each, in the order given
    assert sorted(p.name for p in (queue / "msg").iterdir()) == [mid]
    assert sorted(p.name for p in (queue / "env").iterdir()) == [mid]
    assert (queue / "msg" / mid).read_bytes() == stored
    assert list((queue / "tmp").iterdir()) == []
    fields, rcpts = parse_envelope((queue / "env" / mid).read_text())
    assert fields["id"] == mid
    assert fields["sender"] == "alice@example.test"
    # size: the RFC 822 (CRLF) size, what the agent declares with SIZE=
    assert int(fields["size"]) == len(rfc822(stored))
    assert abs(int(fields["arrival"]) - time.time()) < 60
    assert fields["body"] == "8bitmime" and fields["smtputf8"] == "0"
    assert fields["envid"] == "" and fields["ret"] == ""
    assert [r["addr"] for r in rcpts] == ["carol@remote.test", "Dave@Other.Test"]
    for r in rcpts:
        assert r["state"] == "pending" and r["attempts"] == 0 and r["code"] == 0, r
        assert r["next"] == int(fields["arrival"])
    # one log line, with the same id
    srv.wait_log(r"event=message conn=\d+ peer=127\.0\.0\.1 id=%s from=<alice@example\.test> "
                 r"nrcpts=4 rcpts=<alice@example\.test>,<carol@remote\.test>,<Dave@Other\.Test>,"
                 r"<carol@remote\.test> size=\d+ result=250\n" % mid)
    # spool empty
    assert list((srv.mail_root / ".spool").iterdir()) == []


def test_alias_to_remote_and_local_is_queued_with_the_remote_target(server, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    code, text = send(srv, ["team@example.test"], sender="")
    assert code == 250, text
    mid = re.search(ID, text).group(0).decode()
    assert [p.name for p in srv.files("bob")][0].startswith(mid + ".")
    fields, rcpts = parse_envelope((queue / "env" / mid).read_text())
    assert fields["sender"] == ""  # the null sender
    assert [r["addr"] for r in rcpts] == ["far@remote.test"]


def test_local_only_message_leaves_the_queue_empty(server, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    assert send(srv, ["alice@example.test", "bob@example.test"])[0] == 250
    assert list((queue / "msg").iterdir()) == [] and list((queue / "env").iterdir()) == []
    assert len(srv.files("alice")) == 1 and len(srv.files("bob")) == 1


def test_kill_9_right_after_the_250_loses_nothing(server, tmp_path):
    """The 250 is sent only after both copies are durable: nothing the
    server would still do after it (a rename, a link, an fsync) is needed
    for the message to be complete in the Maildir and the queue."""
    srv, queue = relay_server(server, tmp_path)
    with socket.create_connection((srv.host, srv.port), timeout=10) as sock, \
            sock.makefile("rb") as f:
        def reply():
            line = f.readline()
            while line[3:4] == b"-":
                line = f.readline()
            return line
        assert reply().startswith(b"220")
        sock.sendall(b"EHLO client.test\r\n")
        assert reply().startswith(b"250")
        # one pipelined transaction; the server dies the moment its 250 arrives
        sock.sendall(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\n"
                     b"RCPT TO:<x@remote.test>\r\nRCPT TO:<y@remote.test>\r\nDATA\r\n")
        for _ in range(4):  # MAIL and three RCPTs
            assert reply().startswith(b"250")
        assert reply().startswith(b"354")
        sock.sendall(MSG + b".\r\n")
        last = reply()
        os.kill(srv.proc.pid, signal.SIGKILL)
    assert last.startswith(b"250 "), last
    srv.proc.wait(timeout=10)
    mid = re.search(ID, last).group(0).decode()
    local = srv.files("alice")
    assert [p.name.startswith(mid + ".") for p in local] == [True]
    _, rest, _ = split_trace(rfc822(local[0].read_bytes()))
    assert rest == MSG
    assert (queue / "msg" / mid).read_bytes() == local[0].read_bytes()
    _, rcpts = parse_envelope((queue / "env" / mid).read_text())
    assert [r["addr"] for r in rcpts] == ["x@remote.test", "y@remote.test"]
    # restart: the store opens the same queue; the message is still there
    srv.start()
    assert (queue / "env" / mid).exists() and (queue / "msg" / mid).exists()
    assert len(srv.files("alice")) == 1


def test_a_failing_queue_leaves_nothing_in_the_maildir(server, tmp_path):
    """One commit, all or nothing: when the queue cannot take its copy, the
    client gets 451 and the local copy made in the same commit is removed."""
    srv, queue = relay_server(server, tmp_path)
    assert send(srv, ["alice@example.test"])[0] == 250  # Maildir and queue exist now
    assert len(srv.files("alice")) == 1
    os.chmod(queue / "env", 0o500)  # the server's user can no longer add a record
    try:
        code, text = send(srv, ["bob@example.test", "x@remote.test"])
    finally:
        os.chmod(queue / "env", 0o700)
    assert code == 451 and text.startswith(b"4.3.0"), (code, text)
    assert srv.files("bob") == []
    assert list((queue / "msg").iterdir()) == [] and list((queue / "env").iterdir()) == []
    assert list((srv.mail_root / ".spool").iterdir()) == []
    srv.wait_log(r"event=message conn=\d+ .*rcpts=<bob@example\.test>,<x@remote\.test> "
                 r"size=\d+ result=451 reason=commit\n")
    # the log names the failed step, the record's path and the errno
    err = srv.wait_log(r"event=store-error conn=\d+ [^\n]*")[0]
    assert re.search(r" result=ioerr step=queue-envelope path=" + re.escape(str(queue / "env"))
                     + r"/[0-9A-V]{20} errno=13 error=\"Permission denied\"$", err), err
    # and the next message goes through again
    assert send(srv, ["bob@example.test", "x@remote.test"])[0] == 250
    assert len(srv.files("bob")) == 1 and len(list((queue / "env").iterdir())) == 1
