"""TLS under attack and under maintenance: STARTTLS command injection
(CVE-2011-0411, RFC 3207 5), garbage and abandoned handshakes that must
end only their own connection, protocol versions below TLS 1.2, clear
start-up errors for bad certificate files, and certificate reload on
SIGHUP (new connections get the new certificate, open ones keep theirs, a
broken pair is not taken)."""

import signal
import smtplib
import socket
import ssl
import subprocess
import time
import warnings

from tls_helpers import SERVER_USER, Dialog, openssl_pair, plain_auth

ALICE = plain_auth("alice@example.test", "wonderland")


def good_session(srv):
    """A full authenticated submission over implicit TLS and over STARTTLS."""
    msg = b"Subject: still fine\r\n\r\nbody\r\n"
    with smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=srv.ssl_context(), timeout=10) as s:
        s.login("alice@example.test", "wonderland")
        assert s.sendmail("alice@example.test", ["bob@example.test"], msg) == {}
    with smtplib.SMTP(srv.host, srv.sub_port, timeout=10) as s:
        s.starttls(context=srv.ssl_context())
        s.login("bob", "builder")
        assert s.sendmail("bob@example.test", ["bob@example.test"], msg) == {}


def test_starttls_injection_same_packet(tls_server):
    srv = tls_server()
    for port in (srv.port, srv.sub_port):
        with Dialog(srv.host, port) as d:
            d.ehlo()
            # the attacker's command rides in the same packet as STARTTLS
            d.send(b"STARTTLS\r\nMAIL FROM:<inject@example.test>\r\n")
            code, lines = d.reply()
            assert code == 220, lines
            assert d.quiet(0.5), d.buf  # no plaintext reply to the injected command
            d.sock = srv.ssl_context().wrap_socket(d.sock, server_hostname=srv.host)
            assert d.quiet(0.5), d.buf  # nor one inside TLS
            d.ehlo()
            if port == srv.sub_port:
                assert d.cmd("AUTH PLAIN " + ALICE)[0] == 235
            # had the injected MAIL run, this would be 503 (nested MAIL)
            code, lines = d.cmd("MAIL FROM:<alice@example.test>")
            assert code == 250, lines
            assert d.cmd("QUIT")[0] == 221
    assert "inject@" not in srv.log()


def test_plaintext_after_220_is_not_a_command(tls_server):
    srv = tls_server()
    with Dialog(srv.host, srv.port) as d:
        d.ehlo()
        assert d.cmd("STARTTLS")[0] == 220
        d.send(b"NOOP\r\n")  # plaintext where the ClientHello belongs
        assert d.at_eof()
        assert b"250" not in d.buf
    srv.wait_log(r"event=tls-handshake-failed conn=\d+ peer=127\.0\.0\.1")


def client_hello(srv):
    """The first flight of a real TLS client, as bytes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = srv.ssl_context().wrap_bio(inc, out, server_hostname=srv.host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16"  # a handshake record
    return data


def test_broken_handshakes_then_good_sessions(tls_server):
    srv = tls_server()
    hello = client_hello(srv)
    # 1. garbage instead of a ClientHello on the implicit-TLS port
    with socket.create_connection((srv.host, srv.smtps_port), timeout=10) as s:
        s.sendall(b"EHLO not-tls.example\r\n" * 4)
        data = b""
        s.settimeout(5)
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        assert b"220" not in data and b"250" not in data  # no plaintext SMTP
    # 2. connect and leave at once; 3. half a ClientHello, then leave
    socket.create_connection((srv.host, srv.smtps_port), timeout=10).close()
    with socket.create_connection((srv.host, srv.smtps_port), timeout=10) as s:
        s.sendall(hello[: len(hello) // 2])
    # 4. STARTTLS, a whole ClientHello, then leave mid-handshake
    with Dialog(srv.host, srv.sub_port) as d:
        d.ehlo()
        assert d.cmd("STARTTLS")[0] == 220
        d.send(hello)
    # 5. STARTTLS, then binary garbage
    with Dialog(srv.host, srv.sub_port) as d:
        d.ehlo()
        assert d.cmd("STARTTLS")[0] == 220
        d.send(bytes(range(256)))
        assert d.at_eof()
    srv.wait_log(r"event=tls-handshake-failed", count=2)
    srv.wait_log(r"event=tls-handshake-eof", count=3)
    assert srv.proc.poll() is None
    good_session(srv)
    assert len(srv.messages("bob")) == 2


def test_versions_below_tls12_are_refused(tls_server):
    srv = tls_server()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # Python deprecates these versions too
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection((srv.host, srv.smtps_port), timeout=10) as raw:
        try:
            old.wrap_socket(raw, server_hostname=srv.host)
            refused = False
        except (ssl.SSLError, ConnectionResetError):
            refused = True
    assert refused
    srv.wait_log(r"event=tls-handshake-failed .*(unsupported protocol|version)")
    # TLS 1.2 works, with a forward-secret AEAD cipher chosen by the server
    ctx = srv.ssl_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=ctx, timeout=10) as s:
        assert s.sock.version() == "TLSv1.2"
        name = s.sock.cipher()[0]
        assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
        assert s.noop()[0] == 250
    srv.wait_log(r"event=tls conn=\d+ peer=127\.0\.0\.1 version=TLSv1\.2 cipher=ECDHE-")


def serve_once(srv):
    return subprocess.run([srv.binary, "serve", "-c", str(srv.conf_path)], capture_output=True,
                          timeout=20)


def test_startup_errors_are_one_clear_line(tls_server, tmp_path):
    a_cert, a_key = openssl_pair(tmp_path / "a", "mx.example.test", owner=SERVER_USER)
    b_cert, b_key = openssl_pair(tmp_path / "b", "other.example.test", owner=SERVER_USER)
    cases = [
        (tmp_path / "none" / "cert.pem", tmp_path / "none" / "key.pem",
         "No such file or directory"),
        (a_cert, b_key, "does not match certificate"),
        (a_key, a_key, "no PEM certificate found"),
    ]
    for cert, key, message in cases:
        srv = tls_server(cert=cert, key=key, start=False)
        r = serve_once(srv)
        err = r.stderr.decode() + r.stdout.decode()
        assert r.returncode != 0
        assert message in err, err
        assert "Segmentation" not in err and len(err.strip().splitlines()) <= 2, err


def peer_der(sock):
    return sock.getpeercert(binary_form=True)


def test_sighup_reloads_the_certificate(tls_server, tmp_path):
    d = tmp_path / "certs"
    cert, key = openssl_pair(d, "mx.example.test", owner=SERVER_USER)
    srv = tls_server(cert=cert, key=key)
    pem_a = cert.read_text()
    openssl_pair(d, "mx.example.test", owner=srv.user)  # readable by the server's user
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=tls-reload generation=1 ")
    der_a = ssl.PEM_cert_to_DER_cert(pem_a)
    der_b1 = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert der_a != der_b1

    def ctx():
        c = ssl.create_default_context(cafile=str(cert))
        return c

    old = smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=ctx(), timeout=10)
    assert peer_der(old.sock) == der_b1
    # a second new pair; the open connection keeps the one it started with
    openssl_pair(d, "mx.example.test", owner=srv.user)
    der_b2 = ssl.PEM_cert_to_DER_cert(cert.read_text())
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=tls-reload generation=2 ")
    with smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=ctx(), timeout=10) as s:
        assert peer_der(s.sock) == der_b2
    with smtplib.SMTP(srv.host, srv.sub_port, timeout=10) as s:
        s.starttls(context=ctx())
        assert peer_der(s.sock) == der_b2
    assert old.noop()[0] == 250
    assert peer_der(old.sock) == der_b1
    old.quit()
    # a broken pair (key of another certificate) is refused; B2 stays
    other_cert, other_key = openssl_pair(tmp_path / "other", "x.example.test",
                                         owner=srv.user)
    key.write_bytes(other_key.read_bytes())
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=tls-reload-failed error=\".*does not match certificate.*\" "
                 r"keeping=previous-certificate")
    time.sleep(0.1)
    with smtplib.SMTP_SSL(srv.host, srv.smtps_port, context=ctx(), timeout=10) as s:
        assert peer_der(s.sock) == der_b2
        s.login("alice@example.test", "wonderland")


def test_silent_client_gets_the_handshake_timeout(tls_server):
    # the handshake timeout is min(30 s, command_timeout): 2 s here
    srv = tls_server(limits={"command_timeout": 2})
    t0 = time.monotonic()
    for port in (srv.smtps_port, srv.sub_port):
        with socket.create_connection((srv.host, port), timeout=10) as s:
            if port == srv.sub_port:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"EHLO x\r\n")
                while f.readline()[3:4] == b"-":
                    pass
                s.sendall(b"STARTTLS\r\n")
                assert f.readline().startswith(b"220 ")
            s.settimeout(8)
            assert s.recv(100) == b""  # closed by the server, not by us
    assert time.monotonic() - t0 < 9
    srv.wait_log(r"event=tls-handshake-timeout", count=2)
    good_session(srv)


def test_shutdown_does_not_wait_for_a_stalled_handshake(tls_server):
    srv = tls_server()
    with socket.create_connection((srv.host, srv.smtps_port), timeout=10) as s:
        srv.wait_log(r"event=connect conn=\d+ peer=127\.0\.0\.1 port=\d+ listener=127\.0\.0\.1:"
                     + str(srv.smtps_port))
        t0 = time.monotonic()
        assert srv.stop() == 0  # SIGTERM; the silent client is not waited for
        assert time.monotonic() - t0 < 5
        s.settimeout(5)
        assert s.recv(100) == b""


def test_check_validates_certificate_and_password_file(tls_server, tmp_path):
    a_cert, a_key = openssl_pair(tmp_path / "a", "mx.example.test", owner=SERVER_USER)
    b_cert, b_key = openssl_pair(tmp_path / "b", "other.example.test", owner=SERVER_USER)
    srv = tls_server(cert=a_cert, key=a_key, start=False)
    r = subprocess.run([srv.binary, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert b"TLS: subject CN=mx.example.test" in r.stdout
    assert b"AUTH: 2 account(s)" in r.stdout
    srv = tls_server(cert=a_cert, key=b_key, start=False)
    r = subprocess.run([srv.binary, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, timeout=20)
    assert r.returncode == 1 and b"does not match certificate" in r.stderr
    # a password file with a broken MD5 hash on line 2: that user is
    # disabled, with a warning; the file (and the server) still work
    srv = tls_server(cert=a_cert, key=a_key, start=False, users={})
    (tmp_path / "passwd").write_text("ok:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
                                     "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1\n"
                                     "x:$1$salt$hash\n")
    r = subprocess.run([srv.binary, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert b"passwd:2: user 'x' disabled: MD5-crypt hash has the wrong length" in r.stderr, r.stderr
    # a line that is no passwd-file line refuses the file
    (tmp_path / "passwd").write_text("ok:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
                                     "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1\n"
                                     "no colon here\n")
    r = subprocess.run([srv.binary, "serve", "--check", "-c", str(srv.conf_path)],
                       capture_output=True, timeout=20)
    assert r.returncode == 1
    assert b"passwd:2: no ':' between user name and password hash" in r.stderr, r.stderr
