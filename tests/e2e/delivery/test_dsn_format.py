"""RFC 3464 delivery status notifications as a mail reader sees them: the
DSN builder's unit test (tests/unit/test_dsn.c) writes its sample reports
(bounce, delay warning, RET=FULL, hostile input, a long folded reply) with
SK_DSN_SAMPLES=DIR, and each is parsed here with Python's email package
(policy=email.policy.default): a multipart/report of report-type
delivery-status with a text part, a message/delivery-status part whose
per-recipient blocks carry the Final-Recipient, Action, Status, Remote-MTA
and Diagnostic-Code the builder was given, and the original message's
headers (or the whole message for RET=FULL)."""

import email
import email.policy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def unit_binary(name):
    """The cmocka binary next to the smtpkit under test (built if missing)."""
    smtpkit = Path(os.environ.get("SMTPKIT_BIN") or REPO / "build" / "release" / "smtpkit")
    build = smtpkit.resolve().parent
    binary = build / "tests" / name
    if not binary.exists():
        rel = os.path.relpath(build, REPO)
        args = ["make", "-s", f"BUILD={rel}", f"{rel}/tests/{name}"]
        if Path(rel).name == "san":
            args.insert(2, "SAN=1")
        subprocess.run(args, cwd=REPO, check=True, timeout=600)
    return binary


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("dsn")
    r = subprocess.run([str(unit_binary("test_dsn"))], env=dict(os.environ, SK_DSN_SAMPLES=str(out)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    found = sorted(p.stem for p in out.glob("*.eml"))
    assert found == ["bounce_two_recipients", "delay_warning", "hostile", "long_reply", "ret_full"]
    return out


def norm(s):
    """What a folded, sanitised field holds: controls and runs of white
    space collapse to one space."""
    return re.sub(r"[\x00-\x20\x7f]+", " ", s or "").strip()


def load(samples, name):
    raw = (samples / f"{name}.eml").read_bytes()
    expect = json.loads((samples / f"{name}.json").read_text())
    return raw, email.message_from_bytes(raw, policy=email.policy.default), expect


NAMES = ["bounce_two_recipients", "delay_warning", "hostile", "long_reply", "ret_full"]


@pytest.mark.parametrize("name", NAMES)
def test_structure(samples, name):
    raw, msg, expect = load(samples, name)
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
        assert b"\n" not in line and b"\r" not in line
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert "MAILER-DAEMON@" + expect["reporting_mta"] in str(msg["From"])
    assert norm(expect["sender"]) in norm(str(msg["To"]))
    assert msg["Date"].datetime is not None
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(msg["Message-ID"]))
    for header in ("To", "From", "Subject", "Message-ID", "Date"):
        assert len(msg.get_all(header)) == 1
    parts = list(msg.iter_parts())
    types = [p.get_content_type() for p in parts]
    want_last = "message/rfc822" if expect["ret"] == "full" else "text/rfc822-headers"
    assert types == ["text/plain", "message/delivery-status", want_last]
    for part in msg.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    text = parts[0].get_content()
    for r in expect["rcpts"]:
        assert norm("<%s>" % r["final_recipient"]) in norm(text)
    # the original: its headers, and its body only for RET=FULL
    if expect["ret"] == "full":
        inner = parts[2].get_content()
        assert inner["Subject"] == expect["original_subject"]
        assert "SECRET body line two." in inner.get_content()
    else:
        headers = parts[2].get_content()
        assert "Subject: " + expect["original_subject"] in headers
        assert "SECRET" not in headers


@pytest.mark.parametrize("name", NAMES)
def test_delivery_status_fields(samples, name):
    _, msg, expect = load(samples, name)
    status = list(msg.iter_parts())[1]
    blocks = status.get_payload()
    assert len(blocks) == 1 + len(expect["rcpts"])
    per_message = blocks[0]
    assert per_message["Reporting-MTA"] == "dns; " + expect["reporting_mta"]
    if expect["envid"]:
        assert norm(per_message["Original-Envelope-Id"]) == norm(expect["envid"])
    else:
        assert per_message["Original-Envelope-Id"] is None
    assert per_message["Arrival-Date"] is not None
    for block, r in zip(blocks[1:], expect["rcpts"]):
        assert norm(block["Final-Recipient"]) == "rfc822; " + norm(r["final_recipient"])
        assert block["Action"] == r["action"]
        assert block["Status"] == r["status"]
        if r["original_recipient"]:
            kind, _, addr = r["original_recipient"].partition(";")
            assert norm(block["Original-Recipient"]) == norm(kind + "; " + addr)
        if r["remote_mta"]:
            assert norm(block["Remote-MTA"]) == "dns; " + norm(r["remote_mta"])
        else:
            assert block["Remote-MTA"] is None
        if r["reply"] and name == "long_reply":
            # a 2000-octet run without a space is folded inside (RFC 5322
            # 2.1.1 caps a line at 998): equal but for white space
            assert re.sub(r"\s", "", block["Diagnostic-Code"]) == \
                re.sub(r"\s", "", "smtp;" + r["reply"])
        elif r["reply"]:
            assert norm(block["Diagnostic-Code"]) == "smtp; " + norm(r["reply"])
        else:
            assert norm(block["Diagnostic-Code"]) == "X-smtpkit; " + norm(r["diagnostic"])
        assert block["Last-Attempt-Date"] is not None or name in ("hostile", "long_reply",
                                                                   "ret_full")
        assert (block["Will-Retry-Until"] is not None) == r["will_retry"]
        # one value per field: nothing injected
        for f in ("Final-Recipient", "Action", "Status"):
            assert len(block.get_all(f)) == 1


def test_hostile_input_adds_nothing(samples):
    _, msg, _ = load(samples, "hostile")
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    status = list(msg.iter_parts())[1].get_payload()
    assert len(status) == 2
    assert status[1]["Action"] == "failed" and status[1]["Status"] == "5.0.0"
