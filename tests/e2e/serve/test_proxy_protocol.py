"""The PROXY protocol (HAProxy's proxy-protocol.txt) on a listener with
proxy_protocol = true: a real HAProxy in front of smtpkit with send-proxy
(v1) and send-proxy-v2; the client connects to HAProxy from 127.0.0.5 (or
.6) so its address differs from HAProxy's own (127.0.0.1), and that client
address is what the Received header, the log, trusted_networks and the
per-address limit see. Raw sockets for what a proxy must never get away
with: a connection from outside proxy_networks, a malformed or missing
header, one that never completes (a deadline, however slowly it trickles);
each is closed without a greeting and logged. The AUTH failure budget
is per client address too."""

import base64
import re
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import pytest

from loopback import free_port, read_reply
from haproxy_helpers import HAProxy
from serve_helpers import split_trace

MSG = b"Subject: via the proxy\r\n\r\nhello\r\n"
CLIENT = "127.0.0.5"
OTHER_CLIENT = "127.0.0.6"


def proxied_server(server, tmp_path, proxy_networks=("127.0.0.1/32",), limits=None, tls=False,
                   extra=""):
    """smtpkit with its plain listener (for the fixture's start probe) and a
    proxy_protocol listener (implicit TLS too when tls); returns (srv, port)."""
    pport = free_port()
    listener = f'}},\n  {{ address = "127.0.0.1"; port = {pport}; proxy_protocol = true;'
    if tls:
        listener += " implicit_tls = true;"
    nets = ", ".join(f'"{n}"' for n in proxy_networks)
    text = [f"proxy_networks = [ {nets} ];", "proxy_timeout = 2;", extra]
    if tls:
        text += [f'tls_certificate = "{tmp_path / "cert.pem"}";',
                 f'tls_key = "{tmp_path / "key.pem"}";',
                 "tls_generate_if_missing = true;"]
    srv = server(listener=listener, extra="\n".join(text), limits=limits)
    return srv, pport


def send_via(port, source, rcpt="alice@example.test", sender="carol@remote.test"):
    with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0),
                      local_hostname="client.test") as s:
        return s.sendmail(sender, [rcpt], MSG)


def raw_from(port, source="127.0.0.1", timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_all(s, timeout=10):
    """Everything the server sends until it closes (b"" if it says nothing)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def v2_header(src, dst, sport, dport, command=0x21, tlvs=b""):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport) + tlvs
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, 0x11]) + struct.pack(">H", len(body))
            + body)


# ---- through a real HAProxy ---------------------------------------------------

@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_haproxy_client_address_in_received_and_log(server, tmp_path, send):
    srv, pport = proxied_server(server, tmp_path)
    with HAProxy(tmp_path, {"mx": ("127.0.0.1", pport, send)}) as hp:
        assert send_via(hp.port("mx"), CLIENT) == {}
    msgs = srv.messages("alice")
    assert len(msgs) == 1
    trace, rest, _ = split_trace(msgs[0])
    assert rest == MSG
    received = trace.decode()
    assert received.startswith(f"Return-Path: <carol@remote.test>\r\n"
                               f"Received: from client.test ([{CLIENT}])"), received
    assert "127.0.0.1" not in received, received
    version = 1 if send == "send-proxy" else 2
    srv.wait_log(rf"event=proxy-header conn=\d+ peer={re.escape(CLIENT)} port=\d+ "
                 rf"proxy=127\.0\.0\.1 version={version} command=proxy")
    srv.wait_log(rf"event=connect conn=\d+ peer={re.escape(CLIENT)} port=\d+ listener=127\.0\.0\.1:"
                 rf"{pport} trusted=0 conns=\d+ proxy=127\.0\.0\.1\n")
    srv.wait_log(rf"event=disconnect conn=\d+ peer={re.escape(CLIENT)} ")


def test_haproxy_trusted_networks_apply_to_the_client(server, tmp_path):
    queue = tmp_path / "queue"
    srv, pport = proxied_server(
        server, tmp_path,
        extra=f'trusted_networks = [ "{CLIENT}/32" ];\nrelay_queue = "{queue}";\n'
              # queued only: no delivery agent looks remote.test up
              'delivery = { enabled = false; };')
    with HAProxy(tmp_path, {"v1": ("127.0.0.1", pport, "send-proxy"),
                            "v2": ("127.0.0.1", pport, "send-proxy-v2")}) as hp:
        for name in ("v1", "v2"):
            # the trusted client may relay ...
            assert send_via(hp.port(name), CLIENT, rcpt="friend@remote.test") == {}
            # ... another one behind the same proxy may not
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                send_via(hp.port(name), OTHER_CLIENT, rcpt="friend@remote.test")
            code, text = e.value.recipients["friend@remote.test"]
            assert code == 550 and text.startswith(b"5.7.1"), (code, text)
    # accepted into the relay queue (its layout is the queue's business)
    srv.wait_log(r"event=message .*rcpts=<friend@remote\.test> .*result=250", count=2)
    srv.wait_log(rf"event=connect .*peer={re.escape(CLIENT)} .*trusted=1 ", count=2)
    srv.wait_log(rf"event=connect .*peer={re.escape(OTHER_CLIENT)} .*trusted=0 ", count=2)


def test_haproxy_per_ip_limit_counts_the_client(server, tmp_path):
    srv, pport = proxied_server(server, tmp_path, limits={"connections_per_ip": 1})
    with HAProxy(tmp_path, {"mx": ("127.0.0.1", pport, "send-proxy-v2")}) as hp:
        port = hp.port("mx")
        first = raw_from(port, CLIENT)
        f1 = first.makefile("rb")
        assert f1.readline().startswith(b"220 ")
        # the same client again: over its limit, although the socket peer of
        # every proxied connection is HAProxy's one address
        second = raw_from(port, CLIENT)
        line = second.makefile("rb").readline()
        assert line.startswith(b"421 4.7.0 "), line
        second.close()
        # another client behind the same proxy is not affected
        third = raw_from(port, OTHER_CLIENT)
        f3 = third.makefile("rb")
        assert f3.readline().startswith(b"220 ")
        for s, f in ((first, f1), (third, f3)):
            s.sendall(b"QUIT\r\n")
            assert f.readline().startswith(b"221 ")
            s.close()
    srv.wait_log(rf"event=disconnect conn=\d+ peer={re.escape(CLIENT)} reason=limit")


def test_haproxy_v2_health_checks_are_local(server, tmp_path):
    """HAProxy's health checks send a v2 LOCAL header: accepted, and the
    connection keeps the proxy's own address."""
    srv, pport = proxied_server(server, tmp_path)
    with HAProxy(tmp_path, {"mx": ("127.0.0.1", pport, "send-proxy-v2")}, check=True):
        srv.wait_log(r"event=proxy-header conn=\d+ peer=127\.0\.0\.1 port=\d+ proxy=127\.0\.0\.1 "
                     r"version=2 command=local")
    assert "event=proxy-refused" not in srv.log()


# ---- raw headers ------------------------------------------------------------

def test_v1_and_v2_raw_with_pipelined_bytes(server, tmp_path):
    """The octets after the header are the client's: the header and QUIT in
    one segment get the greeting and then the 221."""
    srv, pport = proxied_server(server, tmp_path)
    headers = [b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n",
               v2_header("192.0.2.8", "127.0.0.1", 40001, 25, tlvs=b"\x01\x00\x04smtp")]
    for h in headers:
        s = raw_from(pport)
        s.sendall(h + b"QUIT\r\n")
        data = read_all(s)
        s.close()
        assert re.match(rb"220 [^\r\n]*\r\n221 [^\r\n]*\r\n$", data), data
    srv.wait_log(r"event=connect conn=\d+ peer=192\.0\.2\.7 port=40000 .*proxy=127\.0\.0\.1")
    srv.wait_log(r"event=connect conn=\d+ peer=192\.0\.2\.8 port=40001 .*proxy=127\.0\.0\.1")


def test_header_from_untrusted_address_is_refused(server, tmp_path):
    srv, pport = proxied_server(server, tmp_path, proxy_networks=("127.0.0.1/32",))
    s = raw_from(pport, "127.0.0.9")
    s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n")
    assert read_all(s) == b""  # no greeting
    s.close()
    srv.wait_log(r"event=proxy-refused conn=\d+ peer=127\.0\.0\.9 port=\d+ listener=\S+ "
                 r"reason=untrusted")
    assert "peer=192.0.2.7" not in srv.log()


@pytest.mark.parametrize("data,reason", [
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 99999 25\r\n", "malformed"),
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\n", "malformed"),
    (b"PROXY TCP4 " + b"1" * 120 + b"\r\n", "malformed"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12, "malformed"),  # version 3
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x0c" + b"\x00" * 12, "malformed"),  # short for IPv6
    (b"EHLO client.test\r\n", "missing"),
    (b"\x16\x03\x01\x00\xa0\x01\x00\x00\x9c\x03\x03", "missing"),  # TLS without the header
])
def test_malformed_or_missing_header_is_refused(server, tmp_path, data, reason):
    srv, pport = proxied_server(server, tmp_path)
    s = raw_from(pport)
    s.sendall(data)
    assert read_all(s) == b""
    s.close()
    srv.wait_log(rf"event=proxy-refused conn=\d+ peer=127\.0\.0\.1 port=\d+ listener=\S+ "
                 rf"reason={reason} error=\"[^\"]+\"")
    assert "event=connect conn=2 " not in srv.log()


def test_silent_and_slow_headers_time_out(server, tmp_path):
    srv, pport = proxied_server(server, tmp_path)  # proxy_timeout = 2
    silent = raw_from(pport)
    t0 = time.monotonic()
    assert read_all(silent, timeout=10) == b""
    assert 1.5 < time.monotonic() - t0 < 6
    silent.close()
    # one octet every 0.3 s: each arrives well within any idle timeout, but
    # the header as a whole has 2 s
    slow = raw_from(pport)
    t0 = time.monotonic()
    closed = False
    for ch in b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n":
        try:
            slow.sendall(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.3)
        if time.monotonic() - t0 > 8:
            break
    if not closed:
        assert read_all(slow, timeout=5) == b""
    assert time.monotonic() - t0 < 6
    slow.close()
    srv.wait_log(r"event=proxy-refused conn=\d+ peer=127\.0\.0\.1 .*reason=timeout", count=2)
    assert "peer=192.0.2.7" not in srv.log()


def test_proxy_header_before_implicit_tls(server, tmp_path):
    """Implicit TLS: the header comes first, then the handshake; the
    ClientHello right behind the header must reach OpenSSL intact."""
    srv, pport = proxied_server(server, tmp_path, tls=True)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = raw_from(pport)
    raw.sendall(v2_header("192.0.2.9", "127.0.0.1", 40002, 465))
    with ctx.wrap_socket(raw) as t:
        f = t.makefile("rb")
        assert f.readline().startswith(b"220 ")
        t.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221 ")
    srv.wait_log(r"event=connect conn=\d+ peer=192\.0\.2\.9 port=40002 .*proxy=127\.0\.0\.1")
    srv.wait_log(r"event=tls conn=\d+ peer=192\.0\.2\.9 version=TLS")


def test_shutdown_closes_connections_waiting_for_a_header(server, tmp_path):
    srv, pport = proxied_server(server, tmp_path, extra="")
    s = raw_from(pport)
    s.sendall(b"PROXY TCP4")
    srv.wait_log(r"event=connect conn=1 ")  # the start probe only
    time.sleep(0.2)
    assert srv.stop() == 0
    assert read_all(s) == b""
    s.close()
    assert re.search(r"event=proxy-refused conn=\d+ peer=127\.0\.0\.1 .*reason=shutdown",
                     srv.log())


def test_sighup_rereads_proxy_networks(server, tmp_path):
    srv, pport = proxied_server(server, tmp_path, proxy_networks=("127.0.0.2/32",))
    header = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n"
    s = raw_from(pport)
    s.sendall(header)
    assert read_all(s) == b""
    s.close()
    srv.wait_log(r"event=proxy-refused conn=\d+ peer=127\.0\.0\.1 .*reason=untrusted")
    # the same file with 127.0.0.1 trusted, then SIGHUP
    text = srv.conf_path.read_text().replace('"127.0.0.2/32"', '"127.0.0.1/32"')
    srv.conf_path.write_text(text)
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=reload ")
    s = raw_from(pport)
    s.sendall(header + b"QUIT\r\n")
    data = read_all(s)
    s.close()
    assert data.startswith(b"220 ") and b"\r\n221 " in data, data
    srv.wait_log(r"event=connect conn=\d+ peer=192\.0\.2\.7 .*proxy=127\.0\.0\.1")


def test_auth_budgets_count_the_client_address(server, smtpkit_bin, tmp_path):
    """The failed-AUTH budget is per client address: spent by one client
    behind the proxy, it does not block another behind the same proxy."""
    passwd = tmp_path / "passwd"
    r = subprocess.run([smtpkit_bin, "passwd", "--stdin", "--scheme", "sha512-crypt", "--cost",
                        "1000", "alice@example.test"], input=b"wonderland\n",
                       capture_output=True, timeout=30, check=True)
    passwd.write_text(r.stdout.decode())
    passwd.chmod(0o644)
    pport = free_port()
    listener = (f'}},\n  {{ address = "127.0.0.1"; port = {pport}; proxy_protocol = true; '
                "implicit_tls = true; auth = true;")
    extra = "\n".join(['proxy_networks = [ "127.0.0.1/32" ];',
                       f'tls_certificate = "{tmp_path / "cert.pem"}";',
                       f'tls_key = "{tmp_path / "key.pem"}";',
                       "tls_generate_if_missing = true;",
                       f'passwd_file = "{passwd}";'])
    srv = server(listener=listener, extra=extra,
                 limits={"auth_failures": 2, "auth_failure_window": 3600,
                         "auth_failures_per_connection": 10, "auth_failure_delay_ms": 0})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    bad = base64.b64encode(b"\0alice@example.test\0wrong").decode()
    good = base64.b64encode(b"\0alice@example.test\0wonderland").decode()

    def auth_codes(client, *creds):
        raw = raw_from(pport)
        raw.sendall(v2_header(client, "127.0.0.1", 40100, 465))
        with ctx.wrap_socket(raw) as t:
            f = t.makefile("rb")
            assert read_reply(f)[0] == 220
            t.sendall(b"EHLO client.test\r\n")
            assert read_reply(f)[0] == 250
            codes = []
            for c in creds:
                t.sendall(f"AUTH PLAIN {c}\r\n".encode())
                codes.append(read_reply(f)[0])
            t.sendall(b"QUIT\r\n")
            read_reply(f)
        return codes

    assert auth_codes("192.0.2.10", bad, bad) == [535, 535]
    # that client's budget is spent: even the right password is not checked
    assert auth_codes("192.0.2.10", good) == [454]
    # another client behind the same proxy still has its own
    assert auth_codes("192.0.2.11", good) == [235]
    srv.wait_log(r"event=auth-failed conn=\d+ peer=192\.0\.2\.10 .*why=address-blocked")
