"""Milters against a real one: rspamd's proxy worker in milter mode
(private_rspamd.py) in front of its scanning worker. A GTUBE message is
refused at the end of data with rspamd's own reply, passed through; an
ordinary message is stored with the X-Spam/X-Rspamd header fields rspamd
adds through the milter protocol (milter_headers module)."""

import shutil
import smtplib

import pytest

from private_rspamd import Rspamd

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

pytestmark = pytest.mark.skipif(shutil.which("rspamd") is None, reason="rspamd not installed")


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    r = Rspamd(tmp_path_factory.mktemp("rspamd"))
    yield r
    r.stop()


def message(subject, body):
    return (f"From: carol@remote.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@remote.test>\r\n\r\n{body}\r\n").encode()


def test_rspamd_rejects_gtube(server, rspamd):
    srv = server(listener=f'milters = [ "{rspamd.spec}" ];')
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.ehlo("client.example")
        s.mail("carol@remote.test")
        s.rcpt("alice@example.test")
        code, text = s.data(message("gtube", "This is spam:\r\n" + GTUBE))
        assert code == 554, text
        assert text.startswith(b"5.7.1 ")
        srv.wait_log(r"event=message .*result=554 reason=milter")
        # the session goes on
        s.mail("carol@remote.test")
        s.rcpt("alice@example.test")
        assert s.data(message("fine", "Hello Alice, see you tomorrow."))[0] == 250
    (stored,) = srv.messages("alice")
    assert b"Subject: fine" in stored
    head = stored.split(b"\r\n\r\n")[0]
    assert b"\r\nX-Spamd-Result: default: False" in head, head
    # rspamd saw the queue id macro: the id of the 250 and the Received field
    qid = [line for line in head.split(b"\r\n") if line.startswith(b"X-Rspamd-Queue-Id: ")]
    assert qid and qid[0].split(b": ")[1] in head.split(b"\r\n\tby ")[1], head
    assert srv.stop() == 0
