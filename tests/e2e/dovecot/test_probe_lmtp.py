"""`smtpkit probe` speaks LMTP (RFC 2033) to the private Dovecot's LMTP
service: LHLO instead of EHLO with --lmtp (over TCP) and at a Unix socket
(unix:/path), the MAIL/RCPT test answered per recipient; without --lmtp the
same port refuses EHLO and HELO, which probe reports."""

import json
import subprocess

from private_dovecot import PrivateDovecot


def probe(smtpkit_bin, *args):
    p = subprocess.run([smtpkit_bin, "probe", "-t", "10", *args], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_probe_lmtp_tcp_and_unix_socket(smtpkit_bin, tmp_path):
    with PrivateDovecot(tmp_path, users={"alice@example.test": "{PLAIN}secret"}) as dv:
        rc, out, err = probe(smtpkit_bin, "--advanced", "--lmtp", f"127.0.0.1:{dv.lmtp_port}")
        assert rc == 0, out + err
        assert "C: LHLO " in out and "C: EHLO" not in out and "C: HELO" not in out
        assert "PIPELINING" in out
        assert f"OK: 127.0.0.1:{dv.lmtp_port} answers as an LMTP server." in out

        # the Unix socket: LMTP by default; the MAIL/RCPT test, per recipient
        sock = f"unix:{dv.lmtp_socket}"
        rc, out, err = probe(smtpkit_bin, sock)
        assert rc == 0, out + err
        assert f"OK: {sock} answers as an LMTP server." in out
        rc, out, err = probe(smtpkit_bin, "--from", "x@remote.test", "--rcpt",
                             "alice@example.test", "--rcpt", "nobody@example.test", sock)
        assert rc == 1, out + err
        assert "C: LHLO " in out
        assert "RCPT TO:<alice@example.test> -> 250 2.1.5" in out
        assert "RCPT TO:<nobody@example.test> -> 550 5.1.1" in out
        assert "refused 1 of 2 recipients" in err

        rc, out, err = probe(smtpkit_bin, "--json", sock)
        assert rc == 0, out + err
        doc = json.loads(out)
        assert doc["lmtp"] is True and doc["probes"][0]["exit"] == 0

        # what the issue saw: EHLO and HELO to an LMTP server fail
        rc, out, err = probe(smtpkit_bin, "--advanced", f"127.0.0.1:{dv.lmtp_port}")
        assert rc == 1, out + err
        assert "C: EHLO " in out and "C: HELO " in out
        assert "refused our HELO: 500" in err


def test_probe_unix_target_errors(smtpkit_bin, tmp_path):
    rc, _, err = probe(smtpkit_bin, "unix:relative/path")
    assert rc == 2 and "absolute socket path" in err
    rc, _, err = probe(smtpkit_bin, f"unix:{tmp_path}/none")
    assert rc == 3, err
    assert f"unix:{tmp_path}/none" in err
