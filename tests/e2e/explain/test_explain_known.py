"""End-to-end tests of the known replies in `smtpkit explain` (the real
binary, SMTPKIT_BIN): every reply of the corpus tests/data/known_replies.tsv
through the command line and --json, what the match relied on, and
`explain --bounce` on the bounce samples in tests/data/bounces (RFC 3464
DSN, Postfix, Exim, qmail, Microsoft 365 and Gmail styles)."""

import json
import os
import pathlib
import re
import subprocess

import pytest

BIN = os.environ.get("SMTPKIT_BIN", "build/release/smtpkit")
REPO = pathlib.Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data"


def run(*args, stdin=b""):
    p = subprocess.run(
        [BIN, "explain", *args],
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=20,
    )
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def corpus():
    rows = []
    for n, line in enumerate((DATA / "known_replies.tsv").read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        f = line.split("\t")
        assert len(f) == 6, f"line {n}: {line!r}"
        rows.append(pytest.param(*f, id=f"line{n}"))
    return rows


CORPUS = corpus()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 150


CONTINUATION = re.compile(r"^([2-5][0-9][0-9])-(?:([245]\.[0-9]{1,3}\.[0-9]{1,3}) )?")


@pytest.mark.parametrize("command,reply,provider,actor,category,source", CORPUS)
def test_corpus_reply_json(command, reply, provider, actor, category, source):
    args = ["--json"]
    if command != "-":
        args += ["--context", command]
    stdin = b""
    m = CONTINUATION.match(reply)
    if m:
        # The documents quote the first line of a multi-line reply ("550-5.7.26
        # ..."). Alone it is a reply cut off before its last line: refused.
        rc, _, err = run(*args, reply)
        assert rc == 2 and "incomplete reply" in err, err
        # Completed by a last line with the same codes, it is explained.
        last = m.group(1) + (" " + m.group(2) if m.group(2) else "")
        stdin = (reply + "\n" + last + "\n").encode()
        rc, out, err = run(*args, "-", stdin=stdin)
    else:
        rc, out, err = run(*args, reply)
    assert rc == 0, err
    k = json.loads(out)["known"]
    assert (k["provider"], k["actor"], k["category"]) == (provider, actor, category), reply
    assert k["source"]["url"].startswith("http")
    assert k["matched_by"] in ("text", "enhanced")
    assert k["certainty"] in ("high", "medium")
    assert k["meaning"] and k["action"]


def test_issue_examples_text():
    """The four replies of the issue now say what to change."""
    first = "550-5.7.26 This mail has been blocked because the sender is unauthenticated."
    rc, _, err = run(first)  # the issue quotes the first line only: cut off
    assert rc == 2 and "incomplete reply" in err, err
    rc, out, err = run(stdin=(first + "\n550 5.7.26 gsmtp\n").encode())
    assert rc == 0, err
    assert "known reply: Gmail / Google Workspace" in out
    assert "SPF" in out and "DKIM" in out
    assert "who acts  sender-admin" in out
    assert "with basic code 550 and enhanced code 5.7.26; high certainty" in " ".join(
        out.split()
    )

    rc, out, _ = run(
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to "
        "unexpected volume or user complaints"
    )
    assert "known reply: Yahoo / AOL" in out and "category  reputation" in out

    rc, out, _ = run("554 5.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]")
    assert "known reply: Postfix" in out and "PTR record" in out
    assert "category  reverse-dns" in out

    rc, out, _ = run("452 4.2.2 The email account that you tried to reach is over quota")
    assert "category  mailbox-full" in out and "who acts  recipient" in out


def test_basis_enhanced_only_and_code_only():
    d = json.loads(run("--json", "5.7.708")[1])
    assert d["known"]["matched_by"] == "enhanced"
    assert d["known"]["provider"] == "Microsoft 365 / Exchange Online"
    assert d["known"]["certainty"] == "medium"
    assert d["known"]["used_text"] is False and d["known"]["used_enhanced"] is True

    d = json.loads(run("--json", "550 5.1.1 no such thing")[1])
    assert d["known"]["matched_by"] == "enhanced" and d["known"]["id"] is None

    d = json.loads(run("--json", "550")[1])
    assert d["known"] == {**d["known"], "matched_by": "code", "certainty": "low", "id": None}
    rc, out, _ = run("550")
    assert "matched   basic code only" in out and "low certainty" in out


def test_command_is_used():
    d = json.loads(
        run("--json", "--context", "RCPT", "554 5.7.1 <a@example.org>: Relay access denied")[1]
    )
    assert d["known"]["id"] == "postfix-relay-denied" and d["known"]["used_command"] is True
    d = json.loads(
        run("--json", "--context", "MAIL", "554 5.7.1 <a@example.org>: Relay access denied")[1]
    )
    assert d["known"]["id"] is None


# ---- --bounce ----------------------------------------------------------------

# file: [(code, enhanced, command, recipient, provider id prefix)]
BOUNCES = {
    "postfix_dsn.eml": [
        (550, "5.1.1", "RCPT", "bob@example.org", "postfix-user-unknown-local"),
        (550, "5.1.1", "RCPT", "carol@gmail.example", "gmail-no-such-user"),
    ],
    "ms365_ndr.eml": [
        (550, "5.1.10", None, "dave@contoso.example", "m365-resolver-not-found"),
    ],
    "gmail_bounce.eml": [
        (554, "5.7.1", None, "erin@example.com", "spamhaus-zen"),
    ],
    "exim_bounce.txt": [
        (550, "5.7.606", "RCPT", "frank@contoso.example", "outlook-banned-sending-ip"),
        (552, "5.3.4", "DATA-END", "grace@example.org", "postfix-size"),
    ],
    "qmail_yahoo.txt": [
        (554, None, None, "henry@yahoo.example", "yahoo-user-unknown"),
    ],
    "postfix_pasted.txt": [
        (421, "4.7.0", "MAIL", "ivan@yahoo.example", "yahoo-tss04"),
        (450, "4.2.0", "RCPT", "judy@example.org", "postgrey"),
        (554, "5.7.1", "CONNECT", "kim@example.com", "barracuda-brbl"),
    ],
}


@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_bounce_json(name):
    data = (DATA / "bounces" / name).read_bytes()
    rc, out, err = run("--bounce", "--json", stdin=data)
    assert rc == 0, err
    d = json.loads(out)
    assert d["kind"] == "bounce" and d["truncated"] is False
    got = [
        (r["code"], r["enhanced"], r["command"], r["recipient"], r["known"]["id"])
        for r in d["replies"]
    ]
    assert got == BOUNCES[name]
    assert d["count"] == len(BOUNCES[name])
    for r in d["replies"]:
        assert r["line"].startswith(str(r["code"]))
        assert "must not be reported" not in r["text"]
        assert "\n" not in r["text"] and "  " not in r["text"]


def test_bounce_text_output():
    data = (DATA / "bounces" / "postfix_dsn.eml").read_bytes()
    rc, out, err = run("--bounce", stdin=data)
    assert rc == 0, err
    assert out.startswith("bounce: 2 replies found\n")
    assert "[1] 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown" in out
    assert "answers   RCPT" in out
    assert "known reply: Postfix (postfix-user-unknown-local)" in out
    # the Gmail multi-line reply, flattened and folded, is one reply
    assert "[2] 550 5.1.1 The email account that you tried to reach does not exist. " \
        "Please try double-checking" in out
    assert "[3]" not in out


def test_bounce_crlf_and_lf_agree():
    data = (DATA / "bounces" / "exim_bounce.txt").read_bytes()
    a = json.loads(run("--bounce", "--json", stdin=data)[1])
    b = json.loads(run("--bounce", "--json", stdin=data.replace(b"\n", b"\r\n"))[1])
    assert a == b


def test_bounce_without_replies():
    rc, out, err = run("--bounce", stdin=b"Hello,\nthis is not a bounce at all.\n")
    assert rc == 2 and out == ""
    assert "no SMTP reply found" in err


def test_bounce_usage_errors():
    rc, _, err = run("--bounce", "550", stdin=b"")
    assert rc == 2 and "--bounce" in err
    rc, _, err = run("--bounce", "--list", stdin=b"")
    assert rc == 2


def test_bounce_reply_in_returned_message_is_ignored():
    msg = (
        b"Subject: Undelivered Mail\n\n"
        b"<a@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1 nope\n"
        b"    (in reply to RCPT TO command)\n\n"
        b"------ This is a copy of the message, including all the headers. ------\n"
        b"550 5.7.1 quoted in the original\n"
    )
    d = json.loads(run("--bounce", "--json", stdin=msg)[1])
    assert [r["line"] for r in d["replies"]] == ["550 5.1.1 nope"]


def test_bounce_larger_than_the_read_limit_is_cut_not_refused():
    head = (DATA / "bounces" / "postfix_pasted.txt").read_bytes()
    big = head + b"\n--- Below this line is a copy of the message.\n\n" + b"x" * (5 * 1024 * 1024)
    rc, out, err = run("--bounce", "--json", stdin=big)
    assert rc == 0, err
    assert json.loads(out)["count"] == 3
    # A plain reply is still limited to 1 MiB.
    rc, _, err = run(stdin=b"550 " + b"x" * (2 * 1024 * 1024))
    assert rc == 2 and "1 MiB" in err
