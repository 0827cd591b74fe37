"""One message, one id: the 250 reply, the event=message log line, the
Received header's "id" clause and the Maildir file name carry the same
string (docs/STORE.md, "The message id"), so an operator can go from a log
line to the stored file with grep and ls. Refusals carry the envelope
(from=, to=, helo=) and a client cannot forge log fields through them."""

import re
import smtplib

from serve_helpers import rfc822, split_trace

MSG = b"Subject: id test\r\n\r\nbody\r\n"
ID = r"[0-9A-V]{20}"


def test_one_id_in_reply_log_received_and_file_name(server):
    srv = server()
    ids = []
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.ehlo("client.test")
        for _ in range(3):
            s.mail("carol@remote.test")
            assert s.rcpt("alice@example.test")[0] == 250
            assert s.rcpt("bob@example.test")[0] == 250
            code, text = s.data(MSG)
            assert code == 250, text
            m = re.fullmatch(rb"2\.0\.0 Ok: queued as (" + ID.encode() + rb")", text)
            assert m, text
            ids.append(m.group(1).decode())
    assert len(set(ids)) == 3
    assert ids == sorted(ids)  # ordered by arrival
    for mid in ids:
        srv.wait_log(r"event=message conn=\d+ peer=127\.0\.0\.1 id=%s from=<carol@remote\.test> "
                     r"nrcpts=2 rcpts=<alice@example\.test>,<bob@example\.test> .*result=250\n"
                     % mid)
        for box in ("alice", "bob"):
            named = [p for p in srv.files(box) if mid in p.name]
            assert len(named) == 1, (mid, srv.files(box))
            assert named[0].name.startswith(mid + "."), named[0].name
            trace, rest, _ = split_trace(rfc822(named[0].read_bytes()))
            assert rest == MSG
            assert re.search(rb"\r\n\tid " + mid.encode() + rb"(\r\n|;| )", trace) or \
                re.search(rb" id " + mid.encode() + rb"\b", trace), trace


def test_refusals_carry_the_envelope(server):
    srv = server()
    with srv.raw() as r:
        assert r.cmd("MAIL FROM:<early@remote.test>")[0] == 503
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<carol@remote.test> FOO=1")[0] == 555
        assert r.cmd("MAIL FROM:<carol@remote.test>")[0] == 250
        assert r.cmd("RCPT TO:<nobody@example.test>")[0] == 550
        assert r.cmd("RCPT TO:<far@remote.test>")[0] == 550
        # a quoted local part with spaces, '=' and quotes: one field, one line
        assert r.cmd('RCPT TO:<"x to=<y@z> helo=evil"@remote.test>')[0] == 550
        assert r.cmd("QUIT")[0] == 221
    log = srv.wait_log(r"event=message conn=\d+ .*reason=quit\n") and srv.log()
    rejects = [l for l in log.splitlines() if "event=reject" in l]
    assert len(rejects) == 5, rejects
    assert re.search(r"event=reject conn=\d+ peer=127\.0\.0\.1 cmd=MAIL code=503 enh=5\.5\.1 "
                     r'text="', rejects[0]), rejects[0]
    assert " from=" not in rejects[0] and " helo=" not in rejects[0]
    assert re.search(r"cmd=MAIL code=555 enh=5\.5\.4 from=<carol@remote\.test> "
                     r'helo=client\.test text="', rejects[1]), rejects[1]
    assert re.search(r"cmd=RCPT code=550 enh=5\.1\.1 from=<carol@remote\.test> "
                     r'to=<nobody@example\.test> helo=client\.test text="', rejects[2]), rejects[2]
    assert re.search(r"cmd=RCPT code=550 enh=5\.7\.1 from=<carol@remote\.test> "
                     r'to=<far@remote\.test> helo=client\.test text="', rejects[3]), rejects[3]
    forged = rejects[4]
    assert "to=<?x?to=<y@z>?helo=evil?@remote.test> helo=client.test text=" in forged, forged
    # the fields before the quoted text: each key once
    head = forged.split(' text="', 1)[0]
    assert head.count(" to=") == 1 and head.count(" helo=") == 1, forged
    assert forged.endswith('helo=evil?@remote.test>: Relay access denied"'), forged
