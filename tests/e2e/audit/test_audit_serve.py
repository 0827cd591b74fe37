"""`smtpkit audit` against smtpkit's own server on the listeners of the
sample configuration (MX with STARTTLS and AUTH, submission, implicit TLS):
every MUST and SHOULD check passes or is skipped for a stated reason, over
plain, STARTTLS and implicit TLS, with the checks that log in and deliver."""

import email
import os
import re

import pytest

def assert_conforms(report):
    """No MUST or SHOULD failure (enhanced codes included: RFC 2034 4 holds
    whether or not the client said EHLO)."""
    fails = {c["name"]: c for c in report["checks"]
             if c["outcome"] == "FAIL" and c["severity"] in ("MUST", "SHOULD")}
    assert not fails, "\n".join(f"{n}: {c['reason']}" for n, c in fails.items())


def test_mx_listener_plain_with_login_and_delivery(tls_server, audit, alice):
    srv = tls_server()
    user, password = alice
    env = dict(os.environ, SMTPKIT_PASSWORD=password)
    code, report, err = audit(f"127.0.0.1:{srv.port}", "--auth", user,
                              "--deliver-to", "alice@example.test", env=env)
    assert_conforms(report)
    assert code == 0, err
    res = {c["name"]: c for c in report["checks"]}
    # what must have run, not been skipped, on this listener
    for name in ("greeting", "ehlo", "helo", "rcpt-before-mail", "data-before-mail",
                 "bare-lf-command", "bare-cr-command", "line-too-long", "pipelining",
                 "starttls-ehlo-after", "starttls-reset", "starttls-injection",
                 "auth-bad-base64", "auth-cancel", "auth-in-transaction", "auth-twice",
                 "open-relay", "postmaster", "data-end", "smuggling-lf-dot-crlf",
                 "smuggling-crlf-dot-lf", "smuggling-lf-dot-lf", "smuggling-cr-dot-cr",
                 "size-declared", "size-enforced", "reply-grammar", "reply-line-length"):
        assert res[name]["outcome"] == "PASS", (name, res[name])
    # AUTH is only offered after STARTTLS: nothing to judge before it
    assert res["auth-plain-before-tls"]["outcome"] == "SKIP"
    # only the data-end message arrived (the smuggling ones were refused for
    # their bare line ends), with the dots unstuffed
    msgs = srv.messages("alice")
    assert len(msgs) == 1, [m[:200] for m in msgs]
    assert email.message_from_bytes(msgs[0])["Subject"] == "smtpkit audit data-end"
    assert msgs[0].endswith(b"\r\n\r\n.a line that starts with a dot\r\n..\r\n"), msgs[0]
    assert report["delivered"] == 6


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_submission_and_implicit_tls_listeners(tls_server, audit, alice, mode):
    srv = tls_server()
    user, password = alice
    env = dict(os.environ, SMTPKIT_PASSWORD=password)
    if mode == "starttls":
        target, args = f"127.0.0.1:{srv.sub_port}", ["--starttls"]
    else:
        target, args = f"127.0.0.1:{srv.smtps_port}", ["--tls"]
    code, report, err = audit(target, *args, "--auth", user, env=env)
    assert report["tls"] == mode
    assert not report["could_not_run"], report["error"]
    assert_conforms(report)
    res = {c["name"]: c for c in report["checks"]}
    # on a submission service MAIL needs AUTH: those checks are skipped
    # with the reason, the others run under TLS
    assert res["rcpt-before-mail"]["outcome"] == "PASS"
    assert res["auth-twice"]["outcome"] == "PASS"
    assert res["nested-mail"]["outcome"] == "SKIP"
    assert "530" in res["nested-mail"]["reason"]
    assert res["starttls-injection"]["outcome"] == "SKIP"  # plaintext only


def test_nothing_delivered_without_deliver_to(tls_server, audit):
    srv = tls_server()
    code, report, err = audit(f"127.0.0.1:{srv.port}")
    assert_conforms(report)
    assert report["delivered"] == 0
    assert srv.messages("alice") == [] and srv.messages("bob") == []
    res = {c["name"]: c for c in report["checks"]}
    assert res["data-end"]["outcome"] == "SKIP"
    assert "--deliver-to" in res["data-end"]["reason"]
    assert res["auth-twice"]["outcome"] == "SKIP"
    # every transaction the server logged ended without data: by RSET, QUIT
    # or the connection closing, never with a message taken
    results = re.findall(r"event=message .* size=(\d+) result=(\S+)", srv.log())
    assert results, srv.log()
    assert all(size == "0" and result == "none" for size, result in results), results
    assert not any(srv.tmp_path.joinpath("queue").rglob("*,*")), "relay queue not empty"
