"""End-to-end tests of `smtpkit explain`: the real binary (SMTPKIT_BIN) on
codes, enhanced codes and pasted replies, text and JSON output, exit codes,
and every reply code found in the seed documents (../shared/seeds from the
repository root, when present)."""

import json
import os
import pathlib
import re
import subprocess

import pytest

BIN = os.environ.get("SMTPKIT_BIN", "build/release/smtpkit")
REPO = pathlib.Path(__file__).resolve().parents[3]
SEEDS = REPO.parent / "shared" / "seeds"

GMAIL = (
    b"550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    b"550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    b"550 5.1.1 https://support.google.com/mail/?p=NoSuchUser  a1si123.1 - gsmtp\r\n"
)


def run(*args, stdin=b""):
    """Run `smtpkit explain ARGS`; stdin is always a pipe, never a tty."""
    p = subprocess.run(
        [BIN, "explain", *args],
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=20,
    )
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def run_json(*args, stdin=b""):
    rc, out, err = run("--json", *args, stdin=stdin)
    assert rc == 0, err
    return json.loads(out)


# ---- basic codes ---------------------------------------------------------


def test_code_421():
    rc, out, err = run("421")
    assert rc == 0 and err == ""
    assert out.startswith("421: transient negative completion, connections")
    assert "Service not available, closing transmission channel" in out
    assert "retry later" in out
    assert "RFC 5321" in out
    assert "4.3.2" in out  # the usual enhanced code


def test_code_json_fields():
    d = run_json("421")
    assert d["kind"] == "code" and d["input"] == "421"
    c = d["code"]
    assert c["code"] == 421 and c["registered"] is True and c["valid_syntax"] is True
    assert c["class"]["digit"] == 4 and "transient" in c["class"]["name"]
    assert [x["digit"] for x in c["digits"]] == [4, 2, 1]
    assert all(x["valid"] for x in c["digits"])
    assert c["digits"][1]["name"] == "connections"
    (m,) = c["meanings"]
    assert m["context"] is None
    assert m["status"] == "standard"
    assert m["advice"] == "retry later"
    assert "CONNECT" in m["commands"] and "ANY" in m["commands"]
    assert m["rfc"].startswith("RFC 5321")
    assert d["enhanced"] is None and d["reply"] is None and d["notes"] == []


def test_code_with_several_meanings():
    rc, out, _ = run("250")
    assert rc == 0
    assert "250 Requested mail action okay, completed" in out
    assert "250 (ETRN) OK, queuing for node <x> started" in out
    assert "250 (ATRN)" in out and "250 (BDAT)" in out
    contexts = [m["context"] for m in run_json("250")["code"]["meanings"]]
    assert contexts[0] is None and "ETRN" in contexts


def test_context_picks_one_meaning():
    d = run_json("--context", "ETRN", "250")
    assert [m["context"] for m in d["code"]["meanings"]] == ["ETRN"]
    assert d["context"] == "ETRN"
    d = run_json("250", "--context", "mail")  # options after the code, any case
    assert [m["context"] for m in d["code"]["meanings"]] == [None]
    d = run_json("--context=STARTTLS", "220")
    (m,) = d["code"]["meanings"]
    assert m["context"] == "STARTTLS" and "3207" in m["rfc"]
    # A command the registry does not list for the code gets a note.
    d = run_json("--context", "EHLO", "354")
    assert any("not listed" in n for n in d["notes"])


def test_extension_only_codes_show_each_context():
    rc, out, _ = run("454")
    assert rc == 0
    assert "454 (AUTH) Temporary authentication failure" in out
    assert "454 (STARTTLS) TLS not available due to temporary reason" in out
    d = run_json("454")
    auth = [m for m in d["code"]["meanings"] if m["context"] == "AUTH"][0]
    assert "538" in auth["status_note"]  # what the seeds claimed for 454
    d = run_json("530")
    assert {m["context"] for m in d["code"]["meanings"]} == {"AUTH", "STARTTLS"}


def test_vendor_and_folk_codes():
    d = run_json("571")
    c = d["code"]
    assert c["registered"] is True and c["valid_syntax"] is False
    assert c["digits"][1]["valid"] is False
    m = c["meanings"][0]
    assert m["status"] == "non-standard" and "Exchange" in m["status_note"]
    rc, out, _ = run("571")
    assert rc == 0 and "outside RFC 5321's reply-code grammar" in out
    assert run_json("505")["code"]["meanings"][0]["status"] == "non-standard"
    assert run_json("200")["code"]["meanings"][0]["status"] == "non-standard"
    assert run_json("355")["code"]["meanings"][0]["status"] == "obsolete"


def test_ehlo_not_implemented_is_502():
    m = run_json("502")["code"]["meanings"][0]
    assert "EHLO" in m["commands"]
    assert "550" in m["status_note"]


def test_unregistered_but_well_formed():
    rc, out, err = run("420")
    assert rc == 0 and err == ""
    assert "unregistered" in out
    assert "transient negative completion" in out
    d = run_json("420")
    assert d["code"]["registered"] is False and d["code"]["meanings"] == []
    assert d["code"]["valid_syntax"] is True


# ---- enhanced codes --------------------------------------------------------


def test_enhanced_5_7_1():
    rc, out, err = run("5.7.1")
    assert rc == 0 and err == ""
    assert out.startswith("5.7.1: Delivery not authorized, message refused")
    assert "Permanent failure" in out and "Security or policy status" in out
    d = run_json("5.7.1")
    assert d["kind"] == "enhanced" and d["code"] is None
    e = d["enhanced"]
    assert e["code"] == "5.7.1"
    assert e["class"]["digit"] == 5 and e["class"]["name"] == "Permanent failure"
    assert e["subject"]["number"] == 7 and e["subject"]["registered"] is True
    assert e["detail"]["registered"] is True and "3463" in e["detail"]["rfc"]


def test_enhanced_later_registrations():
    for code, word, rfc in [
        ("5.7.8", "credentials", "4954"),
        ("5.1.10", "null MX", "7505"),
        ("4.7.24", "SPF", "7372"),
        ("5.6.7", "Non-ASCII", "6531"),
        ("5.7.30", "REQUIRETLS", "8689"),
        ("5.5.6", "too long", "4954"),
    ]:
        e = run_json(code)["enhanced"]
        assert word in e["detail"]["name"], code
        assert rfc in e["detail"]["rfc"], code


def test_enhanced_unregistered_detail_and_text():
    d = run_json("5.7.99")
    assert d["enhanced"]["detail"]["registered"] is False
    assert d["enhanced"]["subject"]["registered"] is True
    rc, out, _ = run("4.9.1")
    assert rc == 0 and "unregistered subject" in out
    d = run_json("5.7.1", "Relaying", "denied")
    assert d["enhanced"]["text"] == "Relaying denied"


# ---- pasted replies ----------------------------------------------------------


def test_reply_line_argument():
    rc, out, err = run("550 5.7.1 Relay access denied")
    assert rc == 0 and err == ""
    assert "reply: 550 5.7.1, 1 line" in out
    assert "| Relay access denied" in out
    assert "550 Requested action not taken: mailbox unavailable" in out
    assert "5.7.1: Delivery not authorized, message refused" in out
    # Split by the shell into words: the same explanation.
    rc2, out2, _ = run("550", "5.7.1", "Relay", "access", "denied")
    assert rc2 == 0 and out2 == out
    d = run_json("550 5.7.1 Relay access denied")
    assert d["kind"] == "reply"
    assert d["reply"] == {"code": 550, "enhanced": "5.7.1", "lines": ["Relay access denied"]}
    assert d["code"]["code"] == 550 and d["enhanced"]["code"] == "5.7.1"


def test_gmail_multiline_on_stdin():
    for args in ((), ("-",)):
        rc, out, err = run(*args, stdin=GMAIL)
        assert rc == 0, err
        assert "reply: 550 5.1.1, 3 lines" in out
        assert "| double-checking the recipient's email address for typos or" in out
        assert "5.1.1: Bad destination mailbox address" in out
        assert "give up" in out
    d = run_json("-", stdin=GMAIL)
    assert d["reply"]["code"] == 550 and d["reply"]["enhanced"] == "5.1.1"
    assert len(d["reply"]["lines"]) == 3
    assert d["reply"]["lines"][2].startswith("https://support.google.com/mail/?p=NoSuchUser")
    assert d["enhanced"]["detail"]["name"] == "Bad destination mailbox address"
    assert d["input"] == GMAIL.decode()


def test_pasted_text_is_tidied():
    pasted = b"   550-5.1.1 first\n   550 5.1.1 second\n\n\n"
    d = run_json(stdin=pasted)
    assert d["reply"]["lines"] == ["first", "second"]
    d = run_json(stdin=b"452\n")
    assert d["kind"] == "code" and d["code"]["code"] == 452


def test_lone_continuation_line_is_incomplete():
    """smtpkit-explain(1): a reply without its last line is bad input (exit
    2), a single continuation line too: its last line might carry another
    code."""
    for args, stdin in ((("421-4.3.2 Service shutting down",), b""),
                        (("--json", "452-4.5.3 Too many recipients"), b""),
                        (("-",), b"421-4.3.2 Service shutting down\r\n")):
        rc, out, err = run(*args, stdin=stdin)
        assert rc == 2 and out == "", (args, out)
        assert "incomplete reply" in err and "continuation line" in err, err
        assert "last line" in err


# ---- the command the reply answers ---------------------------------------------

POSTFIX_RELAY = "454 4.7.1 <x@example.org>: Relay access denied"


def test_postfix_relay_denied_after_rcpt_is_not_an_auth_failure():
    rc, out, err = run("RCPT", POSTFIX_RELAY)
    assert rc == 0, err
    assert "as a reply to RCPT, with 4.7.1:" in out
    picked = out.split("as a reply to RCPT", 1)[1].split("advice", 1)[0]
    assert "relaying" in picked and "Postfix" in picked
    assert "authentication" not in picked.lower()
    assert "454 (AUTH)" not in out and "454 (STARTTLS)" not in out
    flat = " ".join(out.split())  # the text is wrapped at 78 columns
    assert "not listed as a reply to RCPT" in flat and "not an error" in flat
    # The same with --command, --context and on standard input.
    for args, stdin in ((("--command", "RCPT", POSTFIX_RELAY), b""),
                        (("--context=rcpt", POSTFIX_RELAY), b""),
                        (("rcpt", "-"), POSTFIX_RELAY.encode() + b"\r\n")):
        d = run_json(*args, stdin=stdin)
        p = d["picked"]
        assert d["context"] == "RCPT" and p["command"] == "RCPT"
        assert p["source"] == "command+enhanced" and "Relay access denied" in p["meaning"]
        assert p["listed_for_command"] is False and p["advice"] == "fix the request"
        assert [e["command"] for e in p["elsewhere"]] == ["AUTH", "STARTTLS"]
        assert d["code"]["meanings"] == []
        assert any("not listed as a reply to RCPT" in n for n in d["notes"])
    # Without the command every meaning is shown, with a hint.
    d = run_json(POSTFIX_RELAY)
    assert d["picked"] is None
    assert {m["context"] for m in d["code"]["meanings"]} == {"AUTH", "STARTTLS"}
    assert any("give the command" in n for n in d["notes"])
    # Without an enhanced code nothing applies; the other meanings are named.
    d = run_json("RCPT", "454 Relay access denied")
    assert d["picked"]["source"] == "none" and d["picked"]["meaning"] is None
    assert any("after AUTH, 454 means" in n for n in d["notes"])
    rc, out, _ = run("RCPT", "454 Relay access denied")
    assert rc == 0 and "only as a reply to other commands" in " ".join(out.split())


def test_250_depends_on_the_command():
    meanings = {}
    for cmd in ("EHLO", "HELO", "MAIL", "RCPT", "RSET", "DATA-END", "NOOP", "VRFY"):
        d = run_json(cmd, "250", "2.0.0", "OK")
        p = d["picked"]
        assert p["source"] == "command" and p["listed_for_command"] is True, cmd
        assert p["meaning"] not in meanings.values(), cmd
        meanings[cmd] = p["meaning"]
        assert d["notes"] == [], cmd
    assert "extension" in meanings["EHLO"] and "sender" not in meanings["EHLO"]
    assert "reset" in meanings["RSET"] and "after MAIL" not in meanings["RSET"]
    assert "sender" in meanings["MAIL"]
    rc, out, _ = run("--command", "EHLO", "250")
    assert rc == 0 and "as a reply to EHLO:" in out and "ESMTP extension" in " ".join(out.split())
    # Extension meanings keep their command.
    assert run_json("ETRN", "250")["picked"]["meaning"].startswith("ETRN accepted")


def test_enhanced_code_is_the_more_specific_signal():
    p = run_json("RCPT", "550 5.1.1 No such user")["picked"]
    assert p["source"] == "command+enhanced" and "No such mailbox" in p["meaning"]
    p = run_json("RCPT", "550 5.2.1 Mailbox disabled")["picked"]
    assert p["source"] == "general"  # no row for it: the code's own meaning
    p = run_json("RCPT", "454 4.4.3 Directory server failure")["picked"]
    assert p["source"] == "enhanced" and p["advice"] == "retry later"


def test_enhanced_class_mismatch_is_text_with_note():
    d = run_json("550 4.1.1 oops")
    assert d["reply"]["enhanced"] is None
    assert d["reply"]["lines"] == ["4.1.1 oops"]
    assert any("class 4 differs" in n for n in d["notes"])


def test_vendor_reply_line():
    d = run_json("571 5.7.1 Unable to relay")
    assert d["reply"]["code"] == 571 and d["enhanced"]["code"] == "5.7.1"


def test_non_utf8_text_is_made_safe():
    rc, out, _ = run(stdin=b"550 caf\xe9 \xff\r\n")
    assert rc == 0 and "| caf? ?" in out
    d = run_json(stdin=b"550 caf\xe9\r\n")
    assert d["reply"]["lines"] == ["caf\ufffd"]


# ---- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, message",
    [
        ("99", "exactly 3 digits"),
        ("6.0.0", "class must be 2, 4 or 5"),
        ("abc", "3-digit code"),
        ("", "empty input"),
        ("   ", "empty input"),
        ("150", "first digit must be 2-5"),
        ("299", "second digit must be 0-5"),
        ("5.1234.1", "not an enhanced status code"),
        ("2500", "exactly 3 digits"),
        ("250x OK", "' ' or '-'"),
    ],
)
def test_bad_arguments(arg, message):
    rc, out, err = run(arg)
    assert rc == 2
    assert out == ""
    assert err.startswith("smtpkit explain: ")
    assert message in err


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\n", "empty standard input"),
        (b"250-a\r\n251 b\r\n", "line 2: code 251 differs from 250 on line 1"),
        (b"250-a\r\n250xb\r\n", "line 2: expected ' ' or '-'"),
        (b"250-a\r\n250-b\r\n", "incomplete reply"),
        (b"250-a\r\n\r\n250 b\r\n", "line 2: empty line"),
        (b"250 \x1b[2Jboom\r\n", "control character 0x1b"),
        (b"250 a\r\n250 b\r\n", "more than one reply"),
        (b"250 a\x00b\r\n", "NUL"),
    ],
)
def test_bad_stdin(data, message):
    rc, out, err = run("-", stdin=data)
    assert rc == 2 and out == ""
    assert message in err, err


def test_huge_stdin_is_refused():
    rc, _, err = run(stdin=b"250-" + b"x" * (2 * 1024 * 1024))
    assert rc == 2 and "1 MiB" in err


def test_usage_errors():
    rc, out, err = run("--context", "FOO", "250")
    assert rc == 2 and "unknown context 'FOO'" in err
    rc, out, err = run("--bogus")
    assert rc == 2 and "unknown option" in err
    rc, out, err = run("--list", "250")
    assert rc == 2
    rc, out, err = run("--context")
    assert rc == 2 and "needs a command" in err
    rc, out, err = run("--command")
    assert rc == 2 and "needs a command" in err
    rc, out, err = run("--command", "FOO", "250")
    assert rc == 2 and "unknown context 'FOO'" in err
    rc, out, err = run("FOO", "250")  # not a command: not a reply either
    assert rc == 2


def test_help():
    rc, out, err = run("--help")
    assert rc == 0 and out.startswith("usage: smtpkit explain")
    assert "--json" in out and "--list" in out and "--command" in out


# ---- the whole table ---------------------------------------------------------------


def test_list_text_and_json():
    rc, out, _ = run("--list")
    assert rc == 0
    assert "Basic reply codes" in out and "Enhanced status codes" in out
    rc, out, _ = run("--list", "--json")
    d = json.loads(out)
    codes = {(c["code"], c["context"]) for c in d["codes"]}
    assert (250, "ETRN") in codes and (250, None) in codes and (538, "AUTH") in codes
    assert len(d["codes"]) == len(codes)  # no duplicate (code, context)
    enh = {e["code"] for e in d["enhanced"]}
    assert {"X.1.10", "X.7.30", "X.6.10", "X.3.5", "X.7.XXX"} <= enh
    assert [c["class"] for c in d["enhanced_classes"]] == [2, 4, 5]


# ---- the seed documents ----------------------------------------------------------------


def seed_files():
    if not SEEDS.is_dir():
        pytest.skip(f"{SEEDS} not present")
    files = sorted(SEEDS.glob("*"))
    if not files:
        pytest.skip("no seed files")
    return files


# A reply code in running text: three digits starting 2-5, not part of a
# longer number, a dotted code or a range such as "200-299".
CODE_RE = re.compile(r"(?<![\d.\-/])([2-5]\d\d)(?![\d.\-])")


def test_every_seed_code_is_registered():
    found = set()
    for f in seed_files():
        found |= {int(c) for c in CODE_RE.findall(f.read_text(errors="replace"))}
    assert len(found) > 30
    for code in sorted(found):
        d = run_json(str(code))
        assert d["code"]["registered"] is True, code
        assert d["code"]["meanings"], code


def test_seed_command_table_agrees_with_registry():
    """The seed that groups replies by command: every pair it lists is one the
    registry allows (the seed's own mistakes, such as EHLO 550 "Not
    implemented", are still allowed codes, with a corrected meaning)."""
    names = {"connect": "CONNECT", "received data": "DATA-END"}
    pairs = []
    for f in seed_files():
        text = f.read_text(errors="replace")
        if "Reply codes grouped by command" not in text:
            continue
        command = None
        for line in text.split("Reply codes grouped by command", 1)[1].splitlines():
            line = line.strip()
            if line in names or re.fullmatch(r"[A-Z]{4}", line):
                command = names.get(line, line)
            elif command and re.match(r"^[2-5]\d\d\s", line):
                pairs.append((command, line[:3]))
            elif line.startswith("Tags:"):
                break
    if not pairs:
        pytest.skip("no seed groups replies by command")
    assert len(pairs) > 80
    for command, code in pairs:
        d = run_json("--context", command, code)
        assert not any("not listed" in n for n in d["notes"]), (command, code)
