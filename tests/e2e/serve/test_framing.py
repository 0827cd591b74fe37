"""Message data framing through the real server: only CRLF . CRLF ends the
data (RFC 5321 2.3.8, 4.1.1.4); dot-stuffing is undone byte-exactly
(4.5.2); every SMTP smuggling variant (bare LF / bare CR around the dot) is
refused with nothing stored and the smuggled message never delivered; and
pipelined commands after the end of data are answered in order (RFC 2920)
while the first message is being committed."""

import pytest

from serve_helpers import smtp_dot_stuff, split_trace


def start_data(r, rcpts=("alice@example.test",), sender="carol@remote.test"):
    assert r.cmd("EHLO client.test")[0] == 250
    assert r.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    for rc in rcpts:
        assert r.cmd(f"RCPT TO:<{rc}>")[0] == 250
    code, lines = r.cmd("DATA")
    assert code == 354, lines


def test_byte_exact_round_trip_dots_8bit_long_lines(server):
    srv = server()
    body = (b"Subject: dots and bytes\r\n"
            b"\r\n"
            b".\r\n"                       # a line that is only a dot
            b"..\r\n"                      # two dots
            b". leading dot and space\r\n"
            b"...three\r\n"
            b"\xc3\xa9t\xc3\xa9 8-bit \xff\xfe\x80 text\r\n"
            + b"L" * 998 + b"\r\n"         # the longest line RFC 5322 allows
            + b"." + b"M" * 997 + b"\r\n"
            b"\t tab and spaces   \r\n"
            b"last line without anything special\r\n")
    with srv.raw() as r:
        start_data(r, rcpts=("alice@example.test", "bob@example.test"))
        r.send(smtp_dot_stuff(body) + b".\r\n")
        code, lines = r.reply()
        assert code == 250, lines
        assert r.cmd("QUIT")[0] == 221
    for name in ("alice", "bob"):
        msgs = srv.messages(name)
        assert len(msgs) == 1
        _, rest, _ = split_trace(msgs[0])
        assert rest == body


def test_data_split_in_tiny_writes(server):
    """The end of data may arrive one byte at a time."""
    srv = server()
    body = b"Subject: drip\r\n\r\nline one\r\n. stuffed\r\n.\r\n"
    with srv.raw() as r:
        start_data(r)
        for b in smtp_dot_stuff(body) + b".\r\n":
            r.send(bytes([b]))
        code, lines = r.reply()
        assert code == 250, lines
    _, rest, _ = split_trace(srv.messages("alice")[0])
    assert rest == body


# Each variant tries to end the data early with a bare LF or CR around the
# dot, then smuggle a second transaction for bob.
SMUGGLE_ENDINGS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r"]


@pytest.mark.parametrize("ending", SMUGGLE_ENDINGS,
                         ids=["LF.LF", "LF.CRLF", "CRLF.LF", "CR.CR", "CRLF.CR"])
def test_smuggling_refused_nothing_stored(server, ending):
    srv = server()
    smuggled = (b"MAIL FROM:<evil@remote.test>\r\n"
                b"RCPT TO:<bob@example.test>\r\n"
                b"DATA\r\n"
                b"Subject: smuggled\r\n\r\nsmuggled body\r\n")
    with srv.raw() as r:
        start_data(r)
        r.send(b"Subject: cover\r\n\r\ncover body" + ending + smuggled + b".\r\n")
        code, lines = r.reply()
        # refused (5xx) at the real end of data, as one message
        assert 500 <= code < 600, lines
        # the session is usable and no other reply is pending: NOOP answers 250
        code, lines = r.cmd("NOOP")
        assert code == 250, lines
        assert r.cmd("QUIT")[0] == 221
    assert srv.messages("alice") == []
    assert srv.messages("bob") == []
    for name in ("alice", "bob"):
        assert srv.files(name, "tmp") == []
    assert list((srv.mail_root / ".spool").iterdir()) == []


def test_pipelined_batch_after_end_of_data(server):
    """RFC 2920: MAIL/RCPT/DATA in one write; the next transaction sent right
    behind the end of data is kept while the first message is committed and
    answered afterwards, in order."""
    srv = server()
    m1 = b"Subject: first\r\n\r\none\r\n"
    m2 = b"Subject: second\r\n\r\ntwo\r\n"
    with srv.raw() as r:
        code, lines = r.cmd("EHLO client.test")
        assert code == 250 and "PIPELINING" in " ".join(lines)
        r.send(b"MAIL FROM:<carol@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<ghost@example.test>\r\n"
               b"DATA\r\n")
        assert r.reply()[0] == 250
        assert r.reply()[0] == 250
        assert r.reply()[0] == 550
        assert r.reply()[0] == 354
        r.send(m1 + b".\r\n"
               b"MAIL FROM:<dave@remote.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        assert r.reply()[0] == 250  # first message durable
        assert r.reply()[0] == 250  # MAIL
        assert r.reply()[0] == 250  # RCPT
        assert r.reply()[0] == 354  # DATA
        r.send(m2 + b".\r\nQUIT\r\n")
        assert r.reply()[0] == 250
        assert r.reply()[0] == 221
        assert r.at_eof()
    _, rest, _ = split_trace(srv.messages("alice")[0])
    assert rest == m1
    trace, rest, _ = split_trace(srv.messages("bob")[0])
    assert rest == m2 and trace.startswith(b"Return-Path: <dave@remote.test>")


def test_many_messages_one_connection(server):
    srv = server()
    with srv.raw() as r:
        assert r.cmd("EHLO client.test")[0] == 250
        for i in range(20):
            r.send(b"MAIL FROM:<carol@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
            assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
            r.send(b"Subject: %d\r\n\r\nmessage %d\r\n.\r\n" % (i, i))
            assert r.reply()[0] == 250
        assert r.cmd("QUIT")[0] == 221
    msgs = srv.messages("bob")
    assert len(msgs) == 20
    bodies = sorted(split_trace(m)[1] for m in msgs)
    assert bodies == sorted(b"Subject: %d\r\n\r\nmessage %d\r\n" % (i, i) for i in range(20))


@pytest.mark.parametrize("quit_first", [True, False], ids=["quit-then-eof", "eof-after-dot"])
def test_half_closed_client_still_gets_its_replies(server, quit_first):
    """A client that sends its last bytes and shuts down its sending side
    still gets the 250 (sent once the message is durable) before the close."""
    import socket as _socket
    srv = server()
    msg = b"Subject: half close\r\n\r\nbye\r\n"
    with srv.raw() as r:
        start_data(r)
        r.send(msg + b".\r\n" + (b"QUIT\r\n" if quit_first else b""))
        r.sock.shutdown(_socket.SHUT_WR)
        code, lines = r.reply()
        assert code == 250, lines
        if quit_first:
            assert r.reply()[0] == 221
        assert r.at_eof()
    _, rest, _ = split_trace(srv.messages("alice")[0])
    assert rest == msg
    srv.wait_log(r"event=disconnect conn=2 .*reason=%s" % ("quit" if quit_first else "eof"))
