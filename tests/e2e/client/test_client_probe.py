"""`smtpkit probe` against real servers on loopback: aiosmtpd (plain,
STARTTLS, implicit TLS), scripted servers, and broken peers. Checks the
output a person reads, the JSON, and the exit status of each outcome."""

import json
import time

import pytest


from fakeservers import (
    _ThreadServer,
    Aio,
    ClosingServer,
    GarbageServer,
    PasswordCheck,
    RecordingHandler,
    ScriptedSMTP,
    SilentServer,
    ScratchCA,
    free_port,
    make_cert,
    run_smtpkit,
    server_tls_context,
    text,
)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("cert")))


def probe_json(*args, timeout=60):
    cp = run_smtpkit("probe", "--json", *args, timeout=timeout)
    out, err = text(cp)
    return cp.returncode, json.loads(out), err


def test_default_shows_greeting_explained_and_quits():
    with Aio() as srv:
        cp = run_smtpkit("probe", f"127.0.0.1:{srv.port}")
    out, err = text(cp)
    assert cp.returncode == 0, err
    assert "220 " in out and "Python SMTP" in out
    assert "greeting after" in out and "Connected to 127.0.0.1:" in out
    # Explained from the registry: meaning, class and advice.
    assert "220: The greeting" in out
    assert "positive completion" in out
    assert "advice: done" in out
    assert "C: EHLO" not in out  # default mode stops after the greeting


def test_default_json():
    with Aio() as srv:
        rc, doc, _ = probe_json(f"127.0.0.1:{srv.port}")
    assert rc == 0 and doc["exit"] == 0 and doc["error"] is None
    assert doc["mode"] == "host"
    p = doc["probes"][0]
    assert p["port"] == doc["probes"][0]["port"] and p["connected"]
    assert p["greeting"]["code"] == 220
    assert p["greeting"]["command"] == "CONNECT"
    assert p["greeting"]["class"] == "positive completion"
    assert p["connect_ms"] >= 0 and p["greeting_ms"] >= 0
    dirs = [t["dir"] for t in p["transcript"]]
    assert "S" in dirs and "C" in dirs
    assert any(t["line"] == "QUIT" for t in p["transcript"])


def test_advanced_plain_with_mail_rcpt_test():
    handler = RecordingHandler(refuse={"nobody@example.net": "550 5.1.1 No such user here"})
    with Aio(handler) as srv:
        cp = run_smtpkit("probe", "--advanced", "--helo", "probe.test", "--from",
                         "a@example.org", "--rcpt", "b@example.net", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        assert "C: EHLO probe.test" in out
        assert "S: 250-SIZE 33554432" in out
        assert "32 MiB" in out  # SIZE limit in readable units
        assert "does not offer STARTTLS" in out
        assert "C: MAIL FROM:<a@example.org>" in out
        assert "C: RCPT TO:<b@example.net>" in out
        assert "DATA" not in [l.split("C: ")[-1] for l in out.splitlines() if "C: " in l]
        assert handler.messages == []  # never DATA
        assert " ms  S: 221" in out

        # A refused recipient: exit 1 with the reason.
        cp = run_smtpkit("probe", "-a", "--from", "a@example.org", "--rcpt",
                         "nobody@example.net", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 1, out + err
        assert "550 5.1.1 No such user here" in out
        assert "refused 1 of 1 recipients" in err


def test_advanced_starttls_shows_certificate(cert, tmp_path):
    crt, key = cert
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        # Verified against the test CA, name matches.
        cp = run_smtpkit("probe", "-a", "--cafile", crt, f"localhost:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        assert "C: STARTTLS" in out
        assert "TLS established: TLSv1.3" in out
        assert "certificate subject: " in out and "CN=localhost" in out
        assert "certificate issuer: " in out
        assert "certificate valid from " in out and " until " in out
        assert "certificate matches localhost; chain verified" in out
        # EHLO again after TLS (RFC 3207 4.2).
        assert out.count("C: EHLO") == 2

        # Self-signed without the CA: a finding, the dialogue goes on (exit 7);
        # --verify makes it fatal (4); --insecure keeps it out of the status.
        cp = run_smtpkit("probe", "-a", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 7, out + err
        assert "cannot be verified: self-signed" in err
        assert "CERTIFICATE NOT VERIFIED" in out and "continuing despite" in out
        assert_dialogue_reached_quit(out)

        cp = run_smtpkit("probe", "-a", "--verify", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 4, out + err
        assert "self-signed" in err and "--verify" in err
        assert "C: QUIT" not in out and out.count("C: EHLO") == 1

        cp = run_smtpkit("probe", "-a", "--insecure", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 0, out + err
        assert "chain NOT verified" in out and "continuing despite" in out
        assert "CERTIFICATE NOT VERIFIED" in out and "--insecure" in out
        # The last of --verify / --insecure wins.
        cp = run_smtpkit("probe", "-a", "--verify", "-k", f"127.0.0.1:{srv.port}")
        assert cp.returncode == 0, text(cp)
        cp = run_smtpkit("probe", "-a", "-k", "--verify", f"127.0.0.1:{srv.port}")
        assert cp.returncode == 4, text(cp)

        rc, doc, _ = probe_json("-a", "--insecure", f"127.0.0.1:{srv.port}")
        assert rc == 0 and doc["exit"] == 0
        (f,) = doc["probes"][0]["findings"]
        assert f["reasons"] == ["self-signed"] and f["severity"] == "ignored"
        t = doc["probes"][0]["tls"]
        assert t["version"].startswith("TLSv1.")
        assert t["cipher"] and t["bits"] >= 128
        assert "CN=localhost" in t["subject"]
        assert t["verified"] is False and t["name_match"] is True  # IP SAN 127.0.0.1
        assert "self-signed" in t["verify_error"]
        assert doc["probes"][0]["tls_mode"] == "starttls"

        # --no-starttls stays in the clear.
        cp = run_smtpkit("probe", "-a", "--no-starttls", f"127.0.0.1:{srv.port}")
        out, _ = text(cp)
        assert cp.returncode == 0 and "STARTTLS" not in [
            l.split("C: ")[-1] for l in out.splitlines() if "C: " in l]


def assert_dialogue_reached_quit(out):
    """The text output shows the dialogue after TLS through to QUIT/221."""
    sent = [l.split("C: ", 1)[1] for l in out.splitlines() if " C: " in l]
    assert sent.count("STARTTLS") == 1 and sent[-1] == "QUIT", sent
    assert sent.index("STARTTLS") < len(sent) - 2  # EHLO again after TLS
    assert " ms  S: 221" in out


def probe_cert_case(port, *extra):
    """Probe with the MAIL/RCPT test: (text result, JSON result)."""
    args = ("-a", "--from", "a@example.org", "--rcpt", "b@example.net", *extra,
            f"127.0.0.1:{port}")
    cp = run_smtpkit("probe", *args)
    rc, doc, err = probe_json(*args)
    return cp, (rc, doc, err)


def check_cert_finding(port, reasons, words, *extra):
    """The certificate finding in the text, the JSON and the exit status
    (7), with the dialogue carried on to the MAIL/RCPT test and QUIT; and
    the same certificate fatal (4) under --verify."""
    cp, (rc, doc, err) = probe_cert_case(port, *extra)
    out, err_text = text(cp)
    assert cp.returncode == 7, out + err_text
    assert "CERTIFICATE NOT VERIFIED" in out
    for w in words:
        assert w in out, (w, out)
    assert f"cannot be verified: {words[0]}" in err_text, err_text
    assert "MAIL FROM:<a@example.org> -> 250" in out
    assert "RCPT TO:<b@example.net> -> 250" in out
    assert_dialogue_reached_quit(out)
    assert "OK: " in out

    assert rc == 7 and doc["exit"] == 7, err
    p = doc["probes"][0]
    assert p["exit"] == 7 and p["quit_sent"] is True
    (f,) = p["findings"]
    assert f["kind"] == "certificate" and f["severity"] == "warning"
    assert f["reasons"] == reasons
    assert f["dialogue_continued"] is True
    assert f["openssl_errors"], f
    assert all(e["name"].startswith("X509_V_ERR_") for e in f["openssl_errors"])
    assert p["tls"]["verified"] is False
    assert p["test"]["mail_code"] == 250 and p["test"]["rcpt"][0]["code"] == 250
    lines = [t["line"] for t in p["transcript"] if t["dir"] == "C"]
    assert lines[-1] == "QUIT" and "RSET" in lines
    assert sum(1 for l in lines if l.startswith("EHLO ")) == 2
    assert [t["line"] for t in p["transcript"] if t["dir"] == "S"][-1].startswith("221")
    assert "cannot be verified" in doc["error"]

    # --verify: fatal, the dialogue stops at the certificate.
    rc, doc, err = probe_json("-a", "--verify", *extra, f"127.0.0.1:{port}")
    assert rc == 4 and doc["exit"] == 4, err
    p = doc["probes"][0]
    (f,) = p["findings"]
    assert f["severity"] == "fatal" and f["reasons"] == reasons
    assert f["dialogue_continued"] is False and p["quit_sent"] is False
    assert not any(t["line"] == "QUIT" for t in p["transcript"])
    assert "--verify" in doc["error"]
    return f


def test_name_mismatch_is_a_finding(tmp_path):
    crt, key = make_cert(str(tmp_path), cn="other.example", san="DNS:other.example")
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        # The CA is trusted (--cafile): only the name is wrong.
        f = check_cert_finding(srv.port, ["name-mismatch"], ["name mismatch"], "--cafile", crt)
        assert [e["name"] for e in f["openssl_errors"]] == ["X509_V_ERR_IP_ADDRESS_MISMATCH"]
        assert "not valid for 127.0.0.1" in f["detail"] and "other.example" in f["detail"]
        cp = run_smtpkit("probe", "-a", "--cafile", crt, f"127.0.0.1:{srv.port}")
        assert "does NOT match 127.0.0.1" in text(cp)[0]


def test_self_signed_is_a_finding(tmp_path):
    crt, key = make_cert(str(tmp_path))  # localhost, IP 127.0.0.1: the name matches
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        f = check_cert_finding(srv.port, ["self-signed"], ["self-signed"])
        assert [e["name"] for e in f["openssl_errors"]] == [
            "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"]
        assert f["openssl_errors"][0]["depth"] == 0


def test_expired_is_a_finding(tmp_path):
    ca = ScratchCA(str(tmp_path))
    crt, key = ca.issue(start="20200101000000Z", end="20200201000000Z")
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        f = check_cert_finding(srv.port, ["expired"], ["expired"], "--cafile", ca.crt)
        assert [e["name"] for e in f["openssl_errors"]] == ["X509_V_ERR_CERT_HAS_EXPIRED"]
        assert "valid until 2020-02-01 00:00:00 UTC" in f["detail"]


def test_not_yet_valid_is_a_finding(tmp_path):
    ca = ScratchCA(str(tmp_path))
    crt, key = ca.issue(start="20990101000000Z", end="20991231000000Z")
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        f = check_cert_finding(srv.port, ["not-yet-valid"], ["not yet valid"], "--cafile",
                               ca.crt)
        assert [e["name"] for e in f["openssl_errors"]] == ["X509_V_ERR_CERT_NOT_YET_VALID"]
        assert "valid from 2099-01-01 00:00:00 UTC" in f["detail"]


def test_unknown_ca_is_a_finding(tmp_path):
    ca = ScratchCA(str(tmp_path), name="unknown test CA")
    crt, key = ca.issue()
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        f = check_cert_finding(srv.port, ["unknown-ca"], ["unknown CA"])
        names = [e["name"] for e in f["openssl_errors"]]
        assert "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY" in names, names
        assert "unknown test CA" in f["detail"]
        # Trusting that CA: nothing to report.
        rc, doc, err = probe_json("-a", "--cafile", ca.crt, f"127.0.0.1:{srv.port}")
        assert rc == 0 and doc["probes"][0]["findings"] == [], err


def test_several_problems_at_once(tmp_path):
    """An expired certificate from an unknown CA for another name: every
    reason is reported, not only OpenSSL's first."""
    ca = ScratchCA(str(tmp_path), name="other CA")
    crt, key = ca.issue(cn="other.example", san="DNS:other.example",
                        start="20200101000000Z", end="20200201000000Z")
    with Aio(tls_context=server_tls_context(crt, key)) as srv:
        rc, doc, err = probe_json("-a", f"127.0.0.1:{srv.port}")
    assert rc == 7, err
    (f,) = doc["probes"][0]["findings"]
    assert f["reasons"] == ["unknown-ca", "expired", "name-mismatch"], f


def test_auth_offered_after_starttls_is_shown(cert):
    """The capabilities after STARTTLS (AUTH here) are shown despite the
    certificate, which only going on can reveal."""
    crt, key = cert
    with Aio(tls_context=server_tls_context(crt, key), auth=PasswordCheck("u", "p")) as srv:
        cp = run_smtpkit("probe", "-a", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        rc, doc, _ = probe_json("-a", f"127.0.0.1:{srv.port}")
    assert cp.returncode == 7, out + err
    before, after = out.split("C: STARTTLS", 1)
    assert "AUTH" not in before.split("capabilities:", 1)[1]
    assert "login possible with SASL mechanisms: LOGIN PLAIN" in after
    assert_dialogue_reached_quit(out)
    assert rc == 7
    p = doc["probes"][0]
    assert "AUTH" in [c["keyword"] for c in p["capabilities"]]
    assert p["auth_mechanisms"] == ["LOGIN", "PLAIN"]


def test_implicit_tls(cert):
    crt, key = cert
    with Aio(implicit_tls=server_tls_context(crt, key)) as srv:
        rc, doc, err = probe_json("--tls", "--cafile", crt, f"localhost:{srv.port}")
        assert rc == 0, err
        p = doc["probes"][0]
        assert p["tls_mode"] == "implicit"
        assert p["tls"]["verified"] is True
        assert p["greeting"]["code"] == 220
        # Plain probe of a TLS port: the TLS handshake bytes are not SMTP.
        cp = run_smtpkit("probe", "--timeout", "2", f"127.0.0.1:{srv.port}")
        assert cp.returncode in (3, 6), text(cp)


def test_tls_against_plain_server_fails_with_4():
    with Aio() as srv:
        cp = run_smtpkit("probe", "--tls", "--timeout", "3", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 4, out + err
        assert "TLS handshake" in err


def test_connection_refused():
    port = free_port()
    t0 = time.monotonic()
    cp = run_smtpkit("probe", f"127.0.0.1:{port}")
    out, err = text(cp)
    assert cp.returncode == 3
    assert f"could not connect to 127.0.0.1:{port}: connection refused" in err
    assert time.monotonic() - t0 < 5


def test_silent_server_times_out():
    with SilentServer() as srv:
        t0 = time.monotonic()
        cp = run_smtpkit("probe", "--timeout", "1", f"127.0.0.1:{srv.port}")
        elapsed = time.monotonic() - t0
    out, err = text(cp)
    assert cp.returncode == 3, out + err
    assert "sent no greeting within 1 s" in err
    assert 0.9 <= elapsed < 5


def test_server_closing_at_once():
    with ClosingServer() as srv:
        cp = run_smtpkit("probe", f"127.0.0.1:{srv.port}")
    out, err = text(cp)
    assert cp.returncode == 3, out + err
    assert "closed the connection before sending a greeting" in err


@pytest.mark.parametrize(
    "payload",
    [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00", b"SSH-2.0-OpenSSH_9.2\r\n",
     b"22O almost smtp\r\n", b"220-first\r\n221 different code\r\n"],
)
def test_garbage_is_protocol_error(payload):
    with GarbageServer(payload) as srv:
        t0 = time.monotonic()
        cp = run_smtpkit("probe", "--timeout", "5", f"127.0.0.1:{srv.port}")
        elapsed = time.monotonic() - t0
    out, err = text(cp)
    assert cp.returncode == 6, out + err
    assert "does not speak SMTP" in err
    assert elapsed < 4  # refused as soon as it arrives, no waiting for a timeout
    # The JSON stays valid whatever bytes the peer sent.
    with GarbageServer(payload) as srv:
        rc, doc, _ = probe_json("--timeout", "5", f"127.0.0.1:{srv.port}")
    assert rc == 6 and doc["exit"] == 6
    assert "does not speak SMTP" in doc["probes"][0]["error"]


def test_refusing_greeting_554():
    with ScriptedSMTP(greeting=b"554 5.7.1 No SMTP service for you\r\n") as srv:
        rc, doc, err = probe_json(f"127.0.0.1:{srv.port}")
    assert rc == 1
    g = doc["probes"][0]["greeting"]
    assert g["code"] == 554 and g["enhanced"] == "5.7.1"
    assert "refuses service" in doc["error"]
    assert g["advice"]


def test_tempfail_greeting_421_and_quit_sent():
    with ScriptedSMTP(greeting=b"421 4.3.2 Too busy, try later\r\n") as srv:
        cp = run_smtpkit("probe", f"127.0.0.1:{srv.port}")
        out, err = text(cp)
        assert cp.returncode == 1
        assert "421" in out and "retry" in out.lower()
        time.sleep(0.2)
        assert srv.commands == ["QUIT"]


def test_ehlo_refused_falls_back_to_helo():
    with ScriptedSMTP(ehlo_reply="502 5.5.1 EHLO not implemented") as srv:
        # EHLO answered 502: the client retries with HELO (which also gets 502 here).
        cp = run_smtpkit("probe", "-a", f"127.0.0.1:{srv.port}")
        out, _ = text(cp)
        assert "falling back to HELO" in out
        assert [c.split()[0] for c in srv.commands][:2] == ["EHLO", "HELO"]


def test_capabilities_explained_in_json():
    ehlo = ["PIPELINING", "SIZE 10485760", "AUTH PLAIN LOGIN CRAM-MD5", "8BITMIME", "SMTPUTF8",
            "CHUNKING", "ENHANCEDSTATUSCODES", "DSN", "STARTTLS"]
    with ScriptedSMTP(ehlo=ehlo) as srv:
        rc, doc, _ = probe_json("-a", "--no-starttls", f"127.0.0.1:{srv.port}")
    assert rc == 0
    p = doc["probes"][0]
    assert p["esmtp"] is True
    kw = {c["keyword"]: c for c in p["capabilities"]}
    assert set(kw) == set(e.split()[0] for e in ehlo)
    assert "10 MiB" in kw["SIZE"]["explanation"]
    assert p["size_limit"] == 10485760
    assert p["auth_mechanisms"] == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert "RFC 2920" in kw["PIPELINING"]["explanation"]


def test_usage_errors():
    for args in (["probe"], ["probe", "a", "b"], ["probe", "--port", "0", "x"],
                 ["probe", "--timeout", "-1", "127.0.0.1"], ["probe", "--bogus", "x"],
                 ["probe", "host:99999"], ["probe", "--mx", "127.0.0.1"]):
        cp = run_smtpkit(*args)
        assert cp.returncode == 2, args
    cp = run_smtpkit("probe", "--help")
    out, _ = text(cp)
    assert cp.returncode == 0 and "Exit status" in out and "--advanced" in out


def test_starttls_refused_is_tls_failure():
    with ScriptedSMTP(ehlo=["PIPELINING", "STARTTLS"]) as srv:
        cp = run_smtpkit("probe", "-a", f"127.0.0.1:{srv.port}")
    out, err = text(cp)
    assert cp.returncode == 4, out + err
    assert "refused STARTTLS: 502" in err


def test_ipv6_server():
    import socket as s

    if not s.has_ipv6:
        pytest.skip("no IPv6")
    try:
        t = s.socket(s.AF_INET6, s.SOCK_STREAM)
        t.bind(("::1", 0))
        t.close()
    except OSError:
        pytest.skip("no ::1 on this host")
    from aiosmtpd.controller import Controller

    port = free_port()
    ctl = Controller(RecordingHandler(), hostname="::1", port=port, ready_timeout=10)
    ctl.start()
    try:
        rc, doc, err = probe_json(f"[::1]:{port}")
    finally:
        ctl.stop()
    assert rc == 0, err
    assert doc["probes"][0]["address"] == "::1"
    assert any(f"[::1]:{port}" in t["line"] for t in doc["probes"][0]["transcript"])


class InjectingStartTLS(_ThreadServer):
    """Answers STARTTLS with 220 plus an extra reply in the same packet
    (the CVE-2011-0411 pattern seen from the client side), then does TLS."""

    def __init__(self, ctx):
        super().__init__()
        self.ctx = ctx
        self.after_tls = []

    def serve(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 inject.test ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            verb = line.split()[0].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-inject.test\r\n250 STARTTLS\r\n")
            elif verb == b"STARTTLS":
                conn.sendall(b"220 Go ahead\r\n250-injected-before-tls\r\n250 AUTH PLAIN\r\n")
                break
        tls = self.ctx.wrap_socket(conn, server_side=True)
        tf = tls.makefile("rb")
        while True:
            line = tf.readline()
            if not line:
                return
            self.after_tls.append(line)
            verb = line.split()[0].upper()
            if verb == b"EHLO":
                tls.sendall(b"250-inject.test\r\n250 8BITMIME\r\n")
            elif verb == b"QUIT":
                tls.sendall(b"221 Bye\r\n")
                return


def test_bytes_after_starttls_220_are_discarded(cert):
    crt, key = cert
    with InjectingStartTLS(server_tls_context(crt, key)) as srv:
        rc, doc, err = probe_json("-a", "--insecure", f"127.0.0.1:{srv.port}")
    assert rc == 0, err
    p = doc["probes"][0]
    lines = [t["line"] for t in p["transcript"]]
    assert any("discarding" in l and "in the clear after 220" in l for l in lines)
    # The injected "AUTH PLAIN" never became a capability: only what the
    # server said under TLS counts.
    assert [c["keyword"] for c in p["capabilities"]] == ["8BITMIME"]
    assert not any(l.startswith("250-injected") for l in lines)


# ---- each reply explained for its command ----------------------------------------


def explained_after(out, reply_line):
    """The '=>' line under the last line of a reply in the --advanced text
    (replies to pipelined commands follow each other, so the reply text,
    not the command sent before it, says which is which)."""
    lines = out.splitlines()
    for i, l in enumerate(lines):
        if l.endswith("S: " + reply_line):
            for k in lines[i + 1:]:
                if k.strip().startswith("=> "):
                    return k.strip()[3:]
    raise AssertionError(f"no explanation after {reply_line!r} in:\n{out}")


def test_advanced_explains_each_250_for_its_command():
    with ScriptedSMTP() as srv:
        cp = run_smtpkit("probe", "-a", "--from", "a@example.org", "--rcpt", "b@example.net",
                         f"127.0.0.1:{srv.port}")
        rc, doc, _ = probe_json("-a", "--from", "a@example.org", "--rcpt", "b@example.net",
                                f"127.0.0.1:{srv.port}")
    out, err = text(cp)
    assert cp.returncode == 0, out + err
    ehlo, mail, rcpt, rset = (explained_after(out, l) for l in (
        "250 ENHANCEDSTATUSCODES", "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK",
        "250 2.0.0 Reset"))
    assert all(e.startswith("250 ") for e in (ehlo, mail, rcpt, rset))
    assert len({ehlo, mail, rcpt, rset}) == 4, (ehlo, mail, rcpt, rset)
    assert "extension" in ehlo and "sender" not in ehlo
    assert "reset" in rset and "after MAIL" not in rset
    assert "sender" in mail and "recipient" in rcpt
    assert rc == 0
    reps = {r["command"]: r for r in doc["probes"][0]["replies"]}
    assert reps["EHLO"]["meaning"] != reps["RSET"]["meaning"] != reps["MAIL"]["meaning"]
    assert reps["EHLO"]["meaning_source"] == "command"
    assert reps["RSET"]["unexpected_for_command"] is False


def test_postfix_relay_denied_explained_as_relay_refusal():
    relay = "454 4.7.1 <x@example.org>: Relay access denied"
    with ScriptedSMTP(rcpt=lambda a: relay) as srv:
        cp = run_smtpkit("probe", "-a", "--from", "a@example.net", "--rcpt", "x@example.org",
                         f"127.0.0.1:{srv.port}")
        rc, doc, _ = probe_json("-a", "--from", "a@example.net", "--rcpt", "x@example.org",
                                f"127.0.0.1:{srv.port}")
    out, err = text(cp)
    assert cp.returncode == 1, out + err  # refused
    e = explained_after(out, relay)
    assert "relaying denied" in e and "authentication" not in e.lower(), e
    rcpt_block = out.split("S: " + relay, 1)[1].split(" C: ", 1)[0]
    assert "does not list 454 as a reply to RCPT" in rcpt_block
    assert "not an error" in rcpt_block
    assert rc == 1
    (r,) = [r for r in doc["probes"][0]["replies"] if r["command"] == "RCPT"]
    assert r["code"] == 454 and r["enhanced"] == "4.7.1"
    assert r["meaning_source"] == "command+enhanced" and "Relay access denied" in r["meaning"]
    assert r["unexpected_for_command"] is True
    assert [m["command"] for m in r["meanings_elsewhere"]] == ["AUTH", "STARTTLS"]
    assert r["advice"] == "fix the request"
