"""smtpkit's Maildir is a Unix Maildir: files with LF line ends (as Dovecot's
own deliveries), named with ,S=<file size> and ,W=<RFC 822 size> as Dovecot
names them. Dovecot, pointed at that Maildir (its mail_location is the
mail root smtpkit delivers into), serves the message over IMAP byte-exact
with what the SMTP client sent, and agrees on the sizes."""

import imaplib
import re
import smtplib

from private_dovecot import PrivateDovecot

MSG = (b"From: Carol <carol@remote.test>\r\n"
       b"To: Alice <alice@example.test>\r\n"
       b"Subject: unix maildir\r\n"
       b"\r\n"
       b"first line\r\n"
       b".a line that starts with a dot\r\n"
       b"\r\n"
       b"last line\r\n")


def test_maildir_lf_read_back_over_imap(server, tmp_path):
    with PrivateDovecot(tmp_path, users={"alice": "{PLAIN}secret"}) as dv:
        # smtpkit delivers into <dovecot mail root>/alice, Dovecot's %n
        srv = server(mail_root=dv.mail_root, mailboxes={"alice@example.test": "alice"})
        with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
            assert s.sendmail("carol@remote.test", ["alice@example.test"], MSG) == {}
        files = srv.files("alice")
        assert len(files) == 1
        raw = files[0].read_bytes()
        assert b"\r" not in raw
        crlf = raw.replace(b"\n", b"\r\n")
        assert crlf.endswith(b"\r\n\r\n" + MSG) or crlf.endswith(MSG)
        sizes = re.search(r",S=(\d+),W=(\d+)$", files[0].name)
        assert sizes, files[0].name
        assert int(sizes.group(1)) == len(raw)
        assert int(sizes.group(2)) == len(crlf)

        inbox = dv.imap_messages("alice", "secret")
        assert inbox == [crlf]
        # the trace headers smtpkit adds, then exactly what was sent
        assert inbox[0].startswith(b"Return-Path: <carol@remote.test>\r\nReceived: ")
        assert inbox[0].endswith(b"\r\n" + MSG)
        with imaplib.IMAP4("127.0.0.1", dv.imap_port) as m:
            m.login("alice", "secret")
            m.select("INBOX", readonly=True)
            typ, data = m.fetch("1", "(RFC822.SIZE)")
            assert typ == "OK"
            assert int(re.search(rb"RFC822.SIZE (\d+)", data[0]).group(1)) == len(crlf)
        assert srv.stop() == 0
