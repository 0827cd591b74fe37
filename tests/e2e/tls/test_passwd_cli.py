"""`smtpkit passwd`: the hashes it prints verify with the system's crypt(3)
(through Python's crypt module, an independent caller of libxcrypt), the
terminal path reads twice without echo, and bad input is refused."""
import os
import pty
import select
import signal
import subprocess
import time
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

BIN = os.environ.get("SMTPKIT_BIN", "build/release/smtpkit")


def run(args, stdin=b""):
    return subprocess.run([BIN, "passwd", *args], input=stdin, capture_output=True, timeout=30)


@pytest.mark.parametrize("scheme,dovecot,prefix", [
    ("yescrypt", "{CRYPT}", "$y$"), ("sha512-crypt", "{SHA512-CRYPT}", "$6$rounds=100000$")])
def test_stdin_hash_verifies_with_system_crypt(scheme, dovecot, prefix):
    r = run(["--stdin", "--scheme", scheme, "alice"], b"wonderland\n")
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode()
    assert line.endswith("\n") and line.count("\n") == 1
    # A whole Dovecot passwd-file line: user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
    fields = line.rstrip("\n").split(":")
    assert len(fields) == 8 and fields[2:] == ["", "", "", "", "", ""]
    user, hashed = fields[0], fields[1]
    assert user == "alice"
    assert hashed.startswith(dovecot)
    hashed = hashed[len(dovecot):]
    assert hashed.startswith(prefix)
    assert crypt.crypt("wonderland", hashed) == hashed
    assert crypt.crypt("wonderland!", hashed) != hashed
    assert b"wonderland" not in r.stdout + r.stderr


def test_hash_only_without_user_and_crlf_input():
    r = run(["--stdin", "--cost", "3"], b"pass word\r\n")
    assert r.returncode == 0, r.stderr
    hashed = r.stdout.decode().strip()
    assert ":" not in hashed and hashed.startswith("$y$")
    assert crypt.crypt("pass word", hashed) == hashed


def test_userdb_fields_and_argon2id():
    """The options a virtual-user setup needs land in Dovecot's fields; an
    Argon2id hash is the PHC string Dovecot itself writes."""
    r = run(["--stdin", "--scheme", "argon2id", "--cost", "1", "--uid", "5000", "--gid", "5001",
             "--home", "/var/vmail/example.test/carol", "--extra", "userdb_quota_rule=*:storage=1G",
             "--extra", "allow_nets=127.0.0.1/32", "carol@example.test"], b"s3cret\n")
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode().rstrip("\n")
    user, pw, uid, gid, gecos, home, shell, extra = line.split(":", 7)
    assert (user, uid, gid, gecos, home, shell) == (
        "carol@example.test", "5000", "5001", "", "/var/vmail/example.test/carol", "")
    assert extra == "userdb_quota_rule=*:storage=1G allow_nets=127.0.0.1/32"
    assert pw.startswith("{ARGON2ID}$argon2id$v=19$m=65536,t=1,p=1$")
    # Dovecot's own verifier agrees.
    v = subprocess.run(["doveadm", "pw", "-t", pw, "-p", "s3cret"], capture_output=True,
                       timeout=60)
    assert v.returncode == 0 and b"(verified)" in v.stdout, v.stdout + v.stderr
    v = subprocess.run(["doveadm", "pw", "-t", pw, "-p", "s3cret!"], capture_output=True,
                       timeout=60)
    assert v.returncode != 0


def test_argon2id_hash_only_keeps_its_prefix():
    r = run(["--stdin", "--scheme", "argon2id", "--cost", "1"], b"pw\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"{ARGON2ID}$argon2id$v=19$m=65536,t=1,p=1$")


def test_two_runs_use_different_salts():
    a = run(["--stdin"], b"same\n").stdout
    b = run(["--stdin"], b"same\n").stdout
    assert a and b and a != b


@pytest.mark.parametrize(
    "args,stdin,code,message",
    [
        (["--stdin"], b"", 1, b"no password on standard input"),
        (["--stdin"], b"\n", 1, b"empty password refused"),
        (["--stdin"], b"x" * 600 + b"\n", 1, b"longer than 511 bytes"),
        (["--stdin", "--scheme", "md5"], b"pw\n", 2, b"unknown scheme 'md5'"),
        (["--stdin", "--cost", "12"], b"pw\n", 1, b"cost must be 1 to 11"),
        (["--stdin", "--cost", "abc"], b"pw\n", 2, b"--cost needs a number"),
        (["--stdin", "bad:user"], b"pw\n", 2, b"user name must be"),
        (["--stdin", "a", "b"], b"pw\n", 2, b"usage:"),
        (["--stdin", "--uid", "x1", "a"], b"pw\n", 2, b"--uid needs a number"),
        (["--stdin", "--gid", "-5", "a"], b"pw\n", 2, b"--gid needs a number"),
        (["--stdin", "--home", "rel/dir", "a"], b"pw\n", 2, b"--home must be an absolute path"),
        (["--stdin", "--home", "/a:b", "a"], b"pw\n", 2, b"--home must be an absolute path"),
        (["--stdin", "--extra", "noequals", "a"], b"pw\n", 2, b"--extra needs KEY=VALUE"),
        (["--stdin", "--extra", "a=b c", "a"], b"pw\n", 2, b"--extra needs KEY=VALUE"),
        (["--stdin", "--scheme", "argon2id", "--cost", "101"], b"pw\n", 1,
         b"Argon2id time cost must be 1 to 100"),
    ],
)
def test_refusals(args, stdin, code, message):
    r = run(args, stdin)
    assert r.returncode == code
    assert message in r.stderr
    assert r.stdout == b""


def test_no_terminal_without_stdin_flag():
    r = subprocess.run([BIN, "passwd"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, start_new_session=True)
    assert r.returncode == 1
    assert b"use --stdin" in r.stderr


def _pty_session(answers):
    """Run `smtpkit passwd bob` on a pseudo-terminal, answering each prompt
    once it has appeared (input typed early would be flushed, as on a real
    terminal). Bounded: the child is killed after 20 s."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(BIN, [BIN, "passwd", "bob"])
    out = b""
    deadline = time.monotonic() + 20

    def read_some():
        nonlocal out
        if select.select([fd], [], [], 0.2)[0]:
            try:
                data = os.read(fd, 1024)
            except OSError:
                return False
            if not data:
                return False
            out += data
        return True

    try:
        for i, answer in enumerate(answers):
            while out.count(b"assword: ") <= i and time.monotonic() < deadline:
                if not read_some():
                    break
            os.write(fd, answer)
        while time.monotonic() < deadline and read_some():
            pass
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_terminal_prompts_twice_without_echo():
    out, code = _pty_session([b"t0p-secret\n", b"t0p-secret\n"])
    assert code == 0, out
    assert b"Password: " in out and b"Retype password: " in out
    assert b"t0p-secret" not in out
    line = [l for l in out.split(b"\r\n") if l.startswith(b"bob:")][0].decode()
    hashed = line.split(":")[1]
    assert hashed.startswith("{CRYPT}$y$")
    hashed = hashed[len("{CRYPT}"):]
    assert crypt.crypt("t0p-secret", hashed) == hashed


def test_terminal_mismatch_refused():
    out, code = _pty_session([b"one\n", b"two\n"])
    assert code == 1
    assert b"do not match" in out
    assert b"bob:" not in out
