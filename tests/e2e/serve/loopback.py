"""Loopback helpers for the end-to-end tests that run extra services next
to the server (a load balancer, a metrics scraper): free ports, ports in
LISTEN state, and reading one SMTP reply from a socket file. Kept here
rather than imported from conftest.py, whose module name is ambiguous when
the whole suite (with tests/e2e/tls/conftest.py) is collected."""

import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_ports():
    """TCP ports in LISTEN state on this host (IPv4), read from the kernel."""
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "0A":
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def read_reply(sock_file):
    """One (possibly multi-line) SMTP reply: (code, [lines]), (None, []) at EOF."""
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            return None, lines
        text = line.rstrip(b"\r\n")
        lines.append(text.decode("latin-1"))
        if len(text) < 4 or text[3:4] != b"-":
            return int(text[:3]), lines
