"""The certificate, the key and the password file as the server's user sees
them. Started as root, the server reads them before it drops to `user`,
but a SIGHUP re-reads them as that user: `serve --check` and the start
itself refuse a file that user cannot read, naming the file and the user.
A file that exists but cannot be read is never "to be generated"
(tls_generate_if_missing only fills in a pair that does not exist).

The tests build each case around the drop to `nobody`, so they need root
(root itself reads every file)."""

import grp
import os
import pwd
import shutil
import subprocess

import pytest
from tls_helpers import SERVER_USER, openssl_pair

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: the server must drop to another user")

USER = SERVER_USER  # "nobody": the tests run as root


def serve(srv, *args, user=None):
    r = subprocess.run([srv.binary, "serve", *args, "-c", str(srv.conf_path)],
                       capture_output=True, text=True, timeout=20, user=user)
    return r.returncode, r.stdout, r.stderr


def root_only(*paths):
    for p in paths:
        os.chown(p, 0, 0)
        os.chmod(p, 0o600)


def test_check_and_start_refuse_a_key_only_root_can_read(tls_server, tmp_path):
    cert, key = openssl_pair(tmp_path / "pair", "mx.example.test", owner=None)
    root_only(key)
    srv = tls_server(cert=cert, key=key, start=False)
    assert srv.user == USER
    rc, out, err = serve(srv, "--check")
    assert rc == 1, out + err
    assert f"key {key}: not readable by user {USER}: Permission denied" in err, err
    assert "OK" not in out
    # the start refuses too, with the same one line, before serving anything
    rc, out, err = serve(srv)
    assert rc == 1, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("smtpkit serve: ") and f"key {key}: not readable by user {USER}: " \
        "Permission denied" in last, err
    assert "event=start" not in out + err


def test_certificate_and_password_file_are_checked_too(tls_server, tmp_path):
    cert, key = openssl_pair(tmp_path / "pair", "mx.example.test", owner=USER)
    root_only(cert)
    srv = tls_server(cert=cert, key=key, start=False)
    rc, out, err = serve(srv, "--check")
    assert rc == 1 and f"certificate {cert}: not readable by user {USER}" in err, out + err
    rc, out, err = serve(srv)
    assert rc == 1 and f"certificate {cert}: not readable by user {USER}" in err, out + err

    os.chmod(cert, 0o644)
    passwd = tmp_path / "passwd"
    root_only(passwd)
    rc, out, err = serve(srv, "--check")
    assert rc == 1 and f"passwd_file {passwd}: not readable by user {USER}" in err, out + err
    rc, out, err = serve(srv)
    assert rc == 1 and f"passwd_file {passwd}: not readable by user {USER}" in err, out + err

    # readable through the user's group (nobody's primary group) is enough
    group = grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name
    shutil.chown(passwd, user="root", group=group)
    os.chmod(passwd, 0o640)
    rc, out, err = serve(srv, "--check")
    assert rc == 0, out + err
    assert "AUTH: 2 account(s)" in out


def test_a_directory_the_user_cannot_enter_is_refused(tls_server, tmp_path):
    cert, key = openssl_pair(tmp_path / "pair", "mx.example.test", owner=USER)
    os.chmod(tmp_path / "pair", 0o700)  # the files are fine, the way to them is not
    srv = tls_server(cert=cert, key=key, start=False)
    rc, out, err = serve(srv, "--check")
    assert rc == 1, out + err
    assert f"certificate {cert}: not readable by user {USER}: Permission denied" in err, err
    os.chmod(tmp_path / "pair", 0o755)
    rc, out, err = serve(srv, "--check")
    assert rc == 0, out + err


def unreadable_pair_where_one_is_generated(tls_server, tmp_path):
    """tls_generate_if_missing = true (the fixture's default pair location)
    and a pair there that only root can read."""
    srv = tls_server(start=False)
    cert, key = openssl_pair(tmp_path / "tls", "mx.example.test", owner=None)
    root_only(cert, key)
    return srv, cert, key


def test_unreadable_pair_checked_by_the_server_user_is_not_to_be_generated(tls_server,
                                                                          tmp_path):
    # --check run by nobody itself, the user the server runs as (not root)
    srv, cert, key = unreadable_pair_where_one_is_generated(tls_server, tmp_path)
    rc, out, err = serve(srv, "--check", user=USER)
    assert rc == 1, out + err
    assert "will be generated" not in out
    assert f"certificate {cert}: Permission denied" in err, err


def test_unreadable_pair_is_refused_not_generated(tls_server, tmp_path):
    srv, cert, key = unreadable_pair_where_one_is_generated(tls_server, tmp_path)
    # checked by root for a server that drops to nobody
    rc, out, err = serve(srv, "--check")
    assert rc == 1, out + err
    assert "will be generated" not in out
    assert f"certificate {cert}: not readable by user {USER}" in err, err
    # starting does not replace them either
    before = cert.read_bytes(), key.read_bytes()
    rc, out, err = serve(srv)
    assert rc == 1 and f"certificate {cert}: not readable by user {USER}" in err, out + err
    assert (cert.read_bytes(), key.read_bytes()) == before
    # a pair that does not exist is announced, and made at start for the user
    cert.unlink()
    key.unlink()
    rc, out, err = serve(srv, "--check")
    assert rc == 0, out + err
    assert f"TLS: {cert} and {key} will be generated" in out
