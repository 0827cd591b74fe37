"""End-to-end: `probe` and `send` name the known reply when a server
refuses them (the table of src/core/known_replies.def): provider, who must
act, what to do, in text and in probe's JSON. Servers are aiosmtpd and the
scripted server of fakeservers.py on loopback."""

import json

from fakeservers import Aio, RecordingHandler, ScriptedSMTP, run_smtpkit, text

GMAIL_UNAUTH = "550 5.7.26 This mail has been blocked because the sender is unauthenticated."
POSTFIX_UNKNOWN = ("550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in "
                   "virtual mailbox table")
SPAMHAUS = (b"554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using "
            b"zen.spamhaus.org; https://www.spamhaus.org/query/ip/127.0.0.1\r\n")


def test_probe_greeting_refused_by_a_block_list():
    with ScriptedSMTP(greeting=SPAMHAUS) as srv:
        cp = run_smtpkit("probe", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 1, out + err
        assert "known:  Spamhaus (blocklist" in out
        assert "https://check.spamhaus.org/" in out
        cp = run_smtpkit("probe", "--json", f"127.0.0.1:{srv.port}")
        doc = json.loads(text(cp)[0])
        k = doc["probes"][0]["greeting"]["known"]
        assert k["provider"] == "Spamhaus" and k["actor"] == "sender-admin"
        assert k["matched_by"] == "text"


def test_probe_rcpt_refusal_text_and_json():
    handler = RecordingHandler(refuse={"bob@example.org": POSTFIX_UNKNOWN})
    with Aio(handler) as srv:
        args = ["-a", "--from", "a@example.org", "--rcpt", "bob@example.org",
                f"127.0.0.1:{srv.port}"]
        cp = run_smtpkit("probe", *args)
        out, err = text(cp)
        assert cp.returncode == 1, out + err
        assert "known:  Postfix (mailbox-unknown" in out
        assert "who:    the sender" in out
        cp = run_smtpkit("probe", "--json", *args)
        doc = json.loads(text(cp)[0])
        replies = doc["probes"][0]["replies"]
        rcpt = [r for r in replies if r["command"] == "RCPT"]
        assert rcpt and rcpt[0]["known"]["id"] == "postfix-user-unknown-local"
        assert rcpt[0]["known"]["used_command"] is True
        # Accepted replies carry no known reply.
        assert all(r["known"] is None for r in replies if r["code"] < 400)


def test_send_names_the_known_reply_for_each_refusal():
    def rcpt(addr):
        if addr.startswith("gone"):
            return "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
        return "250 2.1.5 OK"

    with ScriptedSMTP(rcpt=rcpt, data_reply=GMAIL_UNAUTH) as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "gone@contoso.example", "--to", "b@example.net", "--body", "x")
        out, err = text(cp)
        assert cp.returncode == 1, out + err
        assert "known:  Microsoft 365 / Exchange Online (mailbox-unknown" in out
        assert "known:  Gmail / Google Workspace (authentication, high certainty)" in out
        assert "SPF" in out and "DKIM" in out

    with ScriptedSMTP(mail_reply="421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily "
                                 "deferred due to unexpected volume or user complaints") as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--body", "x")
        out, err = text(cp)
        assert cp.returncode == 75, out + err
        assert "known:  Yahoo / AOL (reputation" in out


def test_send_plain_refusal_has_no_known_line():
    with ScriptedSMTP(mail_reply="550 5.7.1 Sender rejected") as srv:
        cp = run_smtpkit("send", "--server", f"127.0.0.1:{srv.port}", "--from", "a@example.org",
                         "--to", "b@example.net", "--body", "x")
        out, err = text(cp)
        assert cp.returncode == 1
        assert "known:" not in out
