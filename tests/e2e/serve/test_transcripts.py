"""Golden transcripts (tests/e2e/transcripts/*.smtp): each scenario is
replayed against a freshly started `smtpkit serve` over a raw socket and
every reply line compared byte for byte. On top of the exact text, every
reply is checked against two rules that hold whatever the scenario:

- the reply code is one the registry allows for the command it answers
  (`smtpkit explain --json CODE`, the `commands` of its meanings; ANY
  stands for every command, not for the greeting or the end of data;
  RFC 5321 4.3.2, 3.8 for an unsolicited 421);
- enhanced status codes (RFC 2034, 3463): one on every line of every
  2xx/4xx/5xx reply, of the same class, "regardless of whether or not EHLO
  is employed by the client" (RFC 2034 4): before any HELO/EHLO, after HELO,
  after STARTTLS alike; none on the 220 greeting, on any reply to HELO/EHLO
  (RFC 2034 3) or on a 3xx reply (354, 334: RFC 3463 has no class 3). A 421
  closes the session and is no answer to the command it interrupts: it
  always carries its code.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from transcript import ENHANCED, Replay, Transcript

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts"
FILES = sorted(TRANSCRIPTS.glob("*.smtp"))


@pytest.fixture(scope="session")
def registry_commands(smtpkit_bin):
    """code -> set of command names the registry allows it for."""
    cache = {}

    def allowed(code):
        if code not in cache:
            r = subprocess.run([smtpkit_bin, "explain", "--json", str(code)],
                               capture_output=True, text=True, timeout=10)
            assert r.returncode == 0, r.stderr
            doc = json.loads(r.stdout)
            cmds = set()
            for meaning in (doc.get("code") or {}).get("meanings", []):
                cmds.update(c.upper() for c in meaning["commands"])
            cache[code] = cmds
        return cache[code]

    return allowed


def registry_allows(cmds, owner):
    if owner in cmds:
        return True
    # ANY: any command the client sends; the greeting and the reply to the
    # end of data are phases, listed by name.
    return "ANY" in cmds and owner not in ("CONNECT", "DATA-END", "UNSOLICITED")


def wants_enhanced(code, owner):
    """Whether RFC 2034 asks for an enhanced code on this reply."""
    if code // 100 not in (2, 4, 5):
        return False
    if code == 421:
        return True
    if owner == "CONNECT" and code == 220:
        return False  # the greeting
    return owner not in ("HELO", "EHLO")


def make_checker(allowed):
    def check(code, owner, lines):
        if owner == "UNSOLICITED":
            # RFC 5321 3.8: the only reply without a command is 421
            assert code == 421, f"reply {code} answers no command"
        else:
            cmds = allowed(code)
            assert registry_allows(cmds, owner), (
                f"{code} is not a reply the registry allows for {owner} "
                f"(allowed for: {' '.join(sorted(cmds))})")
        klass = code // 100
        texts = [line[4:] for line in lines]
        enh = [ENHANCED.match(t) for t in texts]
        if not wants_enhanced(code, owner):
            bad = [t for t, m in zip(texts, enh) if m]
            assert not bad, f"{code} to {owner} must carry no enhanced code: {bad[0]!r}"
        else:
            assert all(enh), (f"{code} to {owner} lacks an enhanced code (RFC 2034 4: "
                              f"with or without EHLO): {lines!r}")
            assert all(int(m.group(1)) == klass for m in enh), (
                f"enhanced code class differs from {code}: {lines!r}")
    return check


def test_transcripts_exist():
    assert len(FILES) >= 30, FILES


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path, server, registry_commands):
    t = Transcript(path)
    srv = server(**t.server_kw)
    Replay(t, srv, make_checker(registry_commands)).run()


# ---- the checker itself must catch what it is there for -------------------

def test_checker_refuses_wrong_registry_code(registry_commands):
    check = make_checker(registry_commands)
    with pytest.raises(AssertionError, match="not a reply the registry allows"):
        check(354, "MAIL", [b"354 go ahead"])
    with pytest.raises(AssertionError, match="answers no command"):
        check(250, "UNSOLICITED", [b"250 2.0.0 Ok"])


def test_checker_enhanced_code_rules(registry_commands):
    check = make_checker(registry_commands)
    check(250, "NOOP", [b"250 2.0.0 Ok"])
    check(220, "CONNECT", [b"220 mx.example.test ESMTP smtpkit"])
    check(250, "HELO", [b"250 mx.example.test"])
    check(354, "DATA", [b"354 End data with <CR><LF>.<CR><LF>"])
    check(421, "CONNECT", [b"421 4.7.0 mx.example.test Too many connections"])
    check(421, "HELO", [b"421 4.7.0 mx.example.test Error: too many commands"])
    check(214, "HELP", [b"214-2.0.0 a", b"214 2.0.0 b"])
    # RFC 2034 4: a reply without its code is wrong whether or not the
    # client sent EHLO (the checker no longer knows which it did)
    with pytest.raises(AssertionError, match="lacks an enhanced code"):
        check(250, "NOOP", [b"250 Ok"])
    with pytest.raises(AssertionError, match="lacks an enhanced code"):
        check(252, "VRFY", [b"252 Cannot VRFY user"])
    with pytest.raises(AssertionError, match="lacks an enhanced code"):
        check(221, "QUIT", [b"221 mx.example.test closing connection"])
    with pytest.raises(AssertionError, match="lacks an enhanced code"):
        check(421, "CONNECT", [b"421 mx.example.test Too many connections"])
    with pytest.raises(AssertionError, match="lacks an enhanced code"):
        check(214, "HELP", [b"214-2.0.0 a", b"214 b"])
    with pytest.raises(AssertionError, match="no enhanced code"):
        check(220, "CONNECT", [b"220 2.0.0 mx.example.test ESMTP"])
    with pytest.raises(AssertionError, match="no enhanced code"):
        check(501, "EHLO", [b"501 5.5.4 Syntax"])
    with pytest.raises(AssertionError, match="no enhanced code"):
        check(250, "HELO", [b"250 2.0.0 mx.example.test"])
    with pytest.raises(AssertionError, match="no enhanced code"):
        check(354, "DATA", [b"354 2.0.0 go ahead"])
    with pytest.raises(AssertionError, match="class differs"):
        check(550, "RCPT", [b"550 4.1.1 no"])


# ---- docs/REPLIES.md lists what the transcripts show -----------------------

REPLIES_DOC = Path(__file__).resolve().parents[3] / "docs" / "REPLIES.md"


def doc_rows():
    rows = []
    for line in REPLIES_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[2-5]\d\d", cells[1]):
            rows.append(cells)
    return rows


def test_reply_doc_lists_every_transcript_reply():
    rows = doc_rows()
    listed = {(r[0], int(r[1])) for r in rows}
    missing = set()
    for p in FILES:
        for owner, code in Transcript(p).replies():
            if owner == "UNSOLICITED":
                owner = "any"
            if (owner, code) not in listed and ("any", code) not in listed:
                missing.add((owner, code, p.stem))
    assert not missing, f"docs/REPLIES.md lacks: {sorted(missing)}"


def test_reply_doc_rows_are_registry_replies(registry_commands):
    names = {p.stem for p in FILES}
    for command, code, _enh, _when, where in doc_rows():
        cmds = registry_commands(int(code))
        owner = "UNKNOWN" if command == "any" else command
        assert registry_allows(cmds, owner), (command, code, sorted(cmds))
        for ref in re.findall(r"[a-z_]+", where.split("(")[0]):
            assert ref in names, f"docs/REPLIES.md names a transcript that does not exist: {ref}"


def test_every_transcript_starts_with_a_comment():
    for p in FILES:
        first = p.read_text(encoding="utf-8").splitlines()[0]
        assert re.match(r"# \S", first), p
