"""`smtpkit probe --advanced` against `smtpkit serve` with the self-signed
certificate the server made itself (tls_generate_if_missing): the dialogue
goes on after STARTTLS (EHLO again, AUTH offered only then, QUIT), the
certificate is a finding in the text and the JSON, and the exit status says
so (7); --verify stops at it (4)."""

import json
import subprocess


def probe(smtpkit_bin, *args):
    cp = subprocess.run([smtpkit_bin, "probe", *args], capture_output=True, timeout=60)
    return cp.returncode, cp.stdout.decode(), cp.stderr.decode()


def test_probe_goes_past_the_self_signed_certificate(tls_server, smtpkit_bin):
    srv = tls_server()
    target = f"127.0.0.1:{srv.port}"
    rc, out, err = probe(smtpkit_bin, "-a", "--from", "a@example.net", "--rcpt",
                         "alice@example.test", target)
    assert rc == 7, out + err
    assert "CERTIFICATE NOT VERIFIED" in out and "self-signed" in out
    assert "cannot be verified: self-signed" in err
    before, after = out.split("C: STARTTLS", 1)
    assert "SASL" not in before.split("capabilities:", 1)[1]  # AUTH only under TLS
    assert "login possible with SASL mechanisms" in after
    assert "RCPT TO:<alice@example.test> -> 250" in after
    sent = [l.split(" C: ", 1)[1] for l in out.splitlines() if " C: " in l]
    assert sent[-1] == "QUIT" and sum(s.startswith("EHLO ") for s in sent) == 2
    assert " S: 221 " in after

    rc, outj, err = probe(smtpkit_bin, "-a", "--json", target)
    doc = json.loads(outj)
    assert rc == 7 and doc["exit"] == 7, err
    p = doc["probes"][0]
    (f,) = p["findings"]
    assert f["kind"] == "certificate" and "self-signed" in f["reasons"]
    assert "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT" in [e["name"] for e in f["openssl_errors"]]
    assert p["quit_sent"] is True and p["tls_mode"] == "starttls"
    assert "AUTH" in [c["keyword"] for c in p["capabilities"]]
    assert [t["line"] for t in p["transcript"] if t["dir"] == "C"][-1] == "QUIT"

    # Trusting the server's own certificate: nothing left to report, exit 0
    # (or only the name, if the generated certificate does not name 127.0.0.1).
    rc, outj, err = probe(smtpkit_bin, "-a", "--json", "--cafile", str(srv.cert), target)
    doc = json.loads(outj)
    reasons = [r for f in doc["probes"][0]["findings"] for r in f["reasons"]]
    assert "self-signed" not in reasons and "unknown-ca" not in reasons
    assert rc == (7 if reasons else 0), (reasons, err)

    # --verify: fatal, no QUIT after the handshake.
    rc, out, err = probe(smtpkit_bin, "-a", "--verify", target)
    assert rc == 4, out + err
    assert "--verify" in err and "C: QUIT" not in out
    # Implicit TLS (port 465 style) the same way.
    rc, out, err = probe(smtpkit_bin, "--tls", f"127.0.0.1:{srv.smtps_port}")
    assert rc == 7, out + err
    assert "CERTIFICATE NOT VERIFIED" in out
