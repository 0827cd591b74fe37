"""Self-test of the private Dovecot the LMTP, IMAP and SASL tests use: LMTP
over TCP and over its Unix socket delivers, a Sieve rule files a message,
IMAP reads the messages back."""

import smtplib

import pytest

from private_dovecot import PrivateDovecot

SIEVE = ('require ["fileinto", "mailbox"];\n'
         'if header :contains "Subject" "sorted" { fileinto :create "Sorted"; }\n')


def test_lmtp_sieve_and_imap(tmp_path):
    with PrivateDovecot(tmp_path, users={"alice": "{PLAIN}secret"}, sieve=SIEVE) as dv:
        with smtplib.LMTP("127.0.0.1", dv.lmtp_port) as s:
            assert s.sendmail("x@y.test", ["alice"], b"Subject: hi\r\n\r\nhello\r\n") == {}
            assert s.sendmail("x@y.test", ["alice"], b"Subject: sorted\r\n\r\nfiled\r\n") == {}
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                s.sendmail("x@y.test", ["nobody-here"], b"Subject: x\r\n\r\nx\r\n")
        with smtplib.LMTP(dv.lmtp_socket) as s:
            assert s.sendmail("x@y.test", ["alice"], b"Subject: unix\r\n\r\nvia socket\r\n") == {}
        inbox = dv.imap_messages("alice", "secret")
        assert [m.endswith(b"hello\r\n") or m.endswith(b"via socket\r\n") for m in inbox] == [True, True]
        sorted_ = dv.imap_messages("alice", "secret", "Sorted")
        assert len(sorted_) == 1 and sorted_[0].endswith(b"\r\n\r\nfiled\r\n")
