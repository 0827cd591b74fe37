"""Milters against a real one: Debian's OpenDKIM, private instances
(private_opendkim.py). Signing: a message from a client in opendkim's
InternalHosts gets a DKIM-Signature field added by the milter, stored in
the Maildir, and the signature verifies, checked twice independently:
with dkimpy (python3-dkim) against the published key, and by a second
smtpkit listener whose milter is opendkim in verify mode, which adds
Authentication-Results: dkim=pass. A message changed after signing fails
that verification."""

import smtplib
import subprocess

import dkim
import pytest

from private_opendkim import OpenDKIM

MSG = (b"From: alice@example.test\r\n"
       b"To: bob@example.test\r\n"
       b"Subject: signed by opendkim\r\n"
       b"Message-ID: <m1@example.test>\r\n"
       b"\r\n"
       b"Hello,\r\nthis body is signed.\r\n")


@pytest.fixture
def signer(tmp_path):
    d = OpenDKIM(tmp_path, "s")
    yield d
    d.stop()


def test_opendkim_signs_and_signature_verifies(server, tmp_path, signer):
    srv = server(listener=f'milters = [ "{signer.spec}" ];')
    with smtplib.SMTP(srv.host, srv.port) as s:
        s.sendmail("alice@example.test", ["bob@example.test"], MSG)
    (stored,) = srv.messages("bob")
    assert stored.startswith(b"Return-Path: <alice@example.test>\r\nDKIM-Signature: ")
    sig = stored[stored.index(b"DKIM-Signature: "):].split(b"\r\n\r\n")[0]
    assert b"d=example.test" in sig and b"s=sel" in sig
    srv.wait_log(r"event=milter-changes .*added=1 changed=0 deleted=0 body=kept")

    # independent check: dkimpy with the published key
    record = signer.txt_record().encode()

    def dnsfunc(name, timeout=5):
        assert name in (b"sel._domainkey.example.test.", "sel._domainkey.example.test.")
        return record

    assert dkim.verify(stored, dnsfunc=dnsfunc)
    tampered = stored.replace(b"this body is signed.", b"this body was changed.")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)
    assert srv.stop() == 0


def test_opendkim_verifier_says_pass(server, tmp_path, signer):
    verifier = OpenDKIM(tmp_path, "v", keydir=signer.dir)
    try:
        signing = server(listener=f'milters = [ "{signer.spec}" ];')
        verifying = server(listener=f'milters = [ "{verifier.spec}" ];')
        with smtplib.SMTP(signing.host, signing.port) as s:
            s.sendmail("alice@example.test", ["bob@example.test"], MSG)
        (signed,) = signing.messages("bob")
        # relay the stored message through the verifying server, as a next hop
        # would (the Return-Path field is the final delivery's, RFC 5321 4.4)
        assert signed.startswith(b"Return-Path: ")
        body = signed.split(b"\r\n", 1)[1]
        tampered = body.replace(b"this body is signed.", b"this body was changed.")
        with smtplib.SMTP(verifying.host, verifying.port) as s:
            s.sendmail("alice@example.test", ["bob@example.test"], body)
            s.sendmail("alice@example.test", ["alice@example.test"], tampered)
        (checked,) = verifying.messages("bob")
        ar = [line for line in checked.split(b"\r\n") if line.startswith(b"Authentication-Results:")]
        assert ar, checked.decode(errors="replace")
        assert b"dkim=pass" in checked.split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ")
        (bad,) = verifying.messages("alice")
        head = bad.split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ")
        assert b"dkim=fail" in head or b"dkim=neutral" in head
        assert signing.stop() == 0 and verifying.stop() == 0
    finally:
        verifier.stop()


def test_opendkim_signs_for_authenticated_clients_only(server, smtpkit_bin, tmp_path):
    """With the loopback client outside InternalHosts, OpenDKIM signs only
    what an authenticated client submits: it reads the {auth_type} macro
    the server sends with MAIL."""
    signer = OpenDKIM(tmp_path, "s", internal="192.0.2.1")
    try:
        passwd = tmp_path / "passwd"
        r = subprocess.run([smtpkit_bin, "passwd", "--stdin", "--scheme", "sha512-crypt", "--cost",
                            "1000", "alice@example.test"], input=b"wonderland\n",
                           capture_output=True, timeout=30, check=True)
        passwd.write_text(r.stdout.decode())
        passwd.chmod(0o644)
        srv = server(listener=f'auth = true; auth_requires_tls = false; '
                              f'milters = [ "{signer.spec}" ];',
                     extra=f'passwd_file = "{passwd}";')
        with smtplib.SMTP(srv.host, srv.port) as s:
            s.sendmail("alice@example.test", ["bob@example.test"], MSG)
        with smtplib.SMTP(srv.host, srv.port) as s:
            s.login("alice@example.test", "wonderland")
            s.sendmail("alice@example.test", ["bob@example.test"], MSG)
        unsigned, signed = srv.messages("bob")
        assert b"DKIM-Signature:" not in unsigned
        assert b"\r\nDKIM-Signature: " in signed

        def dnsfunc(name, timeout=5):
            return signer.txt_record().encode()

        assert dkim.verify(signed, dnsfunc=dnsfunc)
        assert srv.stop() == 0
    finally:
        signer.stop()
