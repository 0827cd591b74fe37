"""One password file for Dovecot and smtpkit (issue: "one password file for
both"): lines made by `smtpkit passwd` (Argon2id, with the userdb fields)
and by Dovecot's own `doveadm pw` ({SHA512-CRYPT}, {ARGON2ID}, {SSHA512})
serve Dovecot as passdb and userdb (an IMAP login works) and smtpkit as
passwd_file (AUTH PLAIN over STARTTLS works); a scheme smtpkit cannot
verify ({CRAM-MD5}) disables that one user with a warning naming the file
and line, and the server still starts."""

import os
import pwd
import subprocess

from private_dovecot import PrivateDovecot
from sasl_server import plain_auth, sasl_server, tls_dialog


def doveadm_pw(scheme, password):
    r = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password], capture_output=True,
                       timeout=60, check=True)
    return r.stdout.decode().strip()


def make_shared_file(smtpkit_bin, path, home_root):
    nobody = pwd.getpwnam("nobody")
    uid, gid = str(nobody.pw_uid), str(nobody.pw_gid)
    r = subprocess.run([smtpkit_bin, "passwd", "--stdin", "--scheme", "argon2id", "--cost", "1",
                        "--uid", uid, "--gid", gid, "--home", f"{home_root}/alice",
                        "alice@example.test"], input=b"wonderland\n", capture_output=True,
                       timeout=60, check=True)
    lines = [
        "# one file: Dovecot passdb + userdb, smtpkit passwd_file",
        r.stdout.decode().rstrip("\n"),
        f"bob@example.test:{doveadm_pw('SHA512-CRYPT', 'builder')}:{uid}:{gid}::{home_root}/bob::",
        f"dave@example.test:{doveadm_pw('ARGON2ID', 'diver')}:{uid}:{gid}::{home_root}/dave::",
        f"carol@example.test:{doveadm_pw('CRAM-MD5', 'cramped')}:{uid}:{gid}::{home_root}/carol::",
        f"erin@example.test:{doveadm_pw('SSHA512', 'salted')}:{uid}:{gid}::{home_root}/erin::"
        "userdb_quota_rule=*:storage=1G",
    ]
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o644)
    return 5  # carol's line


ACCOUNTS = [("alice@example.test", "wonderland"), ("bob@example.test", "builder"),
            ("dave@example.test", "diver"), ("erin@example.test", "salted")]


def test_one_file_serves_dovecot_and_smtpkit(tmp_path, server, smtpkit_bin):
    passwd = tmp_path / "users.passwd"
    carol_line = make_shared_file(smtpkit_bin, passwd, tmp_path / "dovecot" / "mail")
    with PrivateDovecot(tmp_path, passwd_file=passwd, userdb="passwd-file") as dv:
        for user, password in ACCOUNTS:
            assert dv.imap_login(user, password), (user, dv.log()[-2000:])
            assert not dv.imap_login(user, password + "x"), user
        assert dv.imap_login("carol@example.test", "cramped")

    # The same file as smtpkit's passwd_file: the server starts (one
    # {ARGON2ID} line used to make it refuse the whole file).
    srv = sasl_server(server, tmp_path, passwd_file=passwd)
    srv.wait_log(r"event=passwd-warning warning=\"" + str(passwd) + f":{carol_line}: "
                 r"user 'carol@example.test' disabled: password scheme not supported")
    assert "erin@example.test' accepted: fast unsalted or salted digest" in srv.log()
    srv.wait_log(r"event=auth-ready passwd_file=\S+ users=5")
    for user, password in ACCOUNTS:
        d = tls_dialog(srv)
        code, lines = d.cmd("AUTH PLAIN " + plain_auth(user, password + "x"))
        assert code == 535, (user, lines)
        code, lines = d.cmd("AUTH PLAIN " + plain_auth(user, password))
        assert code == 235, (user, lines)
        d.cmd("QUIT")
    d = tls_dialog(srv)
    code, lines = d.cmd("AUTH PLAIN " + plain_auth("carol@example.test", "cramped"))
    assert code == 535, lines

    # serve --check reports the disabled user and still passes.
    r = subprocess.run([smtpkit_bin, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"{passwd}:{carol_line}: user 'carol@example.test' disabled".encode() in r.stderr


def test_username_format_lowercases_like_dovecot(tmp_path, server, smtpkit_bin):
    passwd = tmp_path / "users.passwd"
    make_shared_file(smtpkit_bin, passwd, tmp_path / "homes")
    exact = sasl_server(server, tmp_path, passwd_file=passwd)
    d = tls_dialog(exact)
    code, _ = d.cmd("AUTH PLAIN " + plain_auth("Bob@Example.TEST", "builder"))
    assert code == 535
    d.cmd("QUIT")
    exact.stop()
    lower = sasl_server(server, tmp_path, passwd_file=passwd,
                        extra='auth_username_format = "%Lu";')
    d = tls_dialog(lower)
    code, lines = d.cmd("AUTH PLAIN " + plain_auth("Bob@Example.TEST", "builder"))
    assert code == 235, lines
    # The name the client gave is the authenticated identity in the log.
    d.cmd("QUIT")
