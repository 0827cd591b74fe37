#!/usr/bin/env python3
"""bench/load.py - a bounded load test for `smtpkit serve`.

N concurrent senders (separate processes, each using Python's smtplib) send
messages over loopback until --messages have been sent or --time seconds
have passed, whichever comes first. Reports messages/second and the latency
of each message (MAIL FROM to the 250 after the data, which smtpkit sends
only once the message is fsynced) at p50/p95/p99.

Against a running server:
    bench/load.py --port 2525 --rcpt alice@example.test
Starting its own server (temporary configuration and mail root; as root it
runs as "nobody"), and checking afterwards that every message is on disk:
    bench/load.py --serve build/release/smtpkit --senders 50 --messages 5000

smtpkit always fsyncs (file and directories) before its 250: the figures
are with fsync on. They depend on the disk and on the client, which is
Python here; say both when quoting them.
"""

import argparse
import multiprocessing as mp
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sender(idx, args, counter, deadline, out_q):
    """Send messages until the shared budget or the deadline runs out."""
    lat, errors = [], 0
    payload = (b"From: load@remote.test\r\nTo: %s\r\nSubject: load\r\n\r\n" % args.rcpt.encode()
               + b"x" * max(0, args.size - 80) + b"\r\n")
    s = None
    sent_on_conn = 0
    while time.time() < deadline:
        with counter.get_lock():
            if counter.value >= args.messages:
                break
            counter.value += 1
        try:
            if s is None:
                s = smtplib.SMTP(args.host, args.port, timeout=60)
                s.ehlo("load.test")
                sent_on_conn = 0
            t0 = time.perf_counter()
            s.sendmail("load@remote.test", [args.rcpt], payload)
            lat.append(time.perf_counter() - t0)
            sent_on_conn += 1
            if sent_on_conn >= args.per_connection:
                s.quit()
                s = None
        except (smtplib.SMTPException, OSError):
            errors += 1
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
            s = None
    if s is not None:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass
    out_q.put((lat, errors))


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, workdir, args):
    """Start smtpkit serve on a free port with a temporary configuration."""
    port = free_port()
    mail = workdir / "mail"
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    local, domain = args.rcpt.split("@", 1)
    conf = workdir / "smtpkit.conf"
    conf.write_text(f"""
server_name = "bench.example.test";
user = "{user}";
mail_root = "{mail}";
limits = {{ connections = 2000; connections_per_ip = 2000; }};
listeners = ( {{ address = "127.0.0.1"; port = {port}; }} );
domains = [ "{domain}" ];
mailboxes = ( {{ address = "{args.rcpt}"; maildir = "{local}"; }} );
""")
    if os.geteuid() == 0:
        os.chmod(workdir, 0o755)
        os.chmod(conf, 0o644)
    log = open(workdir / "smtpkit.log", "wb")
    proc = subprocess.Popen([binary, "serve", "-c", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("smtpkit serve failed:\n" + (workdir / "smtpkit.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    args.port = port
    return proc, mail / local / "new"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--senders", type=int, default=50, help="concurrent senders (default 50)")
    ap.add_argument("--messages", type=int, default=2000, help="total messages (default 2000)")
    ap.add_argument("--time", type=float, default=60.0, help="time limit in seconds (default 60)")
    ap.add_argument("--size", type=int, default=2048, help="message size in octets (default 2048)")
    ap.add_argument("--per-connection", type=int, default=10,
                    help="messages per SMTP session before QUIT (default 10)")
    ap.add_argument("--rcpt", default="alice@example.test")
    ap.add_argument("--serve", metavar="SMTPKIT", help="start this smtpkit binary for the run")
    args = ap.parse_args()
    if not (1 <= args.senders <= 1000 and 1 <= args.messages <= 10_000_000
            and 0 < args.time <= 3600):
        sys.exit("bounds: 1..1000 senders, 1..10M messages, 0..3600 s")

    proc = workdir = newdir = None
    if args.serve:
        workdir = Path(tempfile.mkdtemp(prefix="smtpkit-bench-"))
        proc, newdir = start_server(args.serve, workdir, args)
    try:
        counter = mp.Value("l", 0)
        out_q = mp.Queue()
        t0 = time.time()
        deadline = t0 + args.time
        procs = [mp.Process(target=sender, args=(i, args, counter, deadline, out_q))
                 for i in range(args.senders)]
        for p in procs:
            p.start()
        lat, errors = [], 0
        for _ in procs:
            l, e = out_q.get(timeout=args.time + 120)
            lat.extend(l)
            errors += e
        for p in procs:
            p.join(timeout=30)
        elapsed = time.time() - t0
        lat.sort()
        ok = len(lat)
        print(f"senders={args.senders} messages_ok={ok} errors={errors} size={args.size} "
              f"per_connection={args.per_connection} elapsed_s={elapsed:.2f}")
        print(f"throughput_msgs_per_s={ok / elapsed:.1f} (fsync on: smtpkit always syncs "
              f"before its 250)")
        print("latency_ms p50={:.1f} p95={:.1f} p99={:.1f} max={:.1f}".format(
            *(1000 * percentile(lat, p) for p in (50, 95, 99, 100))))
        if newdir is not None:
            delivered = len(os.listdir(newdir))
            print(f"delivered_files={delivered} (every 250 accounted for: "
                  f"{'yes' if delivered == ok else 'NO'})")
            if delivered != ok:
                return 1
        return 0 if errors == 0 else 1
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            stop = [l for l in (workdir / "smtpkit.log").read_text().splitlines()
                    if "event=stop" in l]
            if stop:
                print("server:", stop[-1].split(" info ", 1)[-1])
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
