#!/usr/bin/env python3
"""bench/delivery.py - outbound delivery, smtpkit against Postfix.

One run: the same load submitted from loopback to each system in turn, each
relaying it to a fresh Postfix `smtp-sink` on 127.0.0.2 as the next hop:

  smtpkit  `smtpkit serve` on 127.0.0.1, relaying for 127.0.0.0/8
           (trusted_networks) into its relay_queue; its delivery agent finds
           the sink as the MX of sink.test through a private dnsmasq
           (delivery.dns_servers, delivery.smtp_port: smtpkit has no static
           route, so the MX look-up is its only way and it does one)
  postfix  a private Postfix instance on 127.0.0.3 (its own
           config_directory, queue_directory and data_directory in a
           temporary folder; mynetworks = 127.0.0.0/8) with
           `relayhost = [127.0.0.2]:PORT`: a static route, no DNS

The submission tool is the same for both: `smtpkit bench` (one event loop,
CONC sessions, MSGS messages of SIZE octets, PER messages per connection).
The clock runs from just before the submission tool starts to the moment
the last message was written by the sink (the newest mtime of its dump
files, `smtp-sink -d`: one file per delivered message, so the files also
count the deliveries); the run is over once the sink holds MSGS files and
the server's queue is empty, and it is an error if any message is missing.

Server CPU: each system runs in a cpuacct cgroup of its own
(/sys/fs/cgroup/cpuacct/...), whose usage counts every process and thread
in it, including the Postfix daemons that exit during the run (smtpd, smtp,
cleanup); the figure is the difference between the start of submission
and the end of the run. Neither the sink, dnsmasq nor the submission tool
is in it. The submission tool's own CPU is reported apart (its rusage).

Loopback only; every wait is bounded (--time for the submission, --wait
for the deliveries). Needs root (Postfix's master, the cgroup).
"""

import argparse
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests", "e2e", "delivery"),
                os.path.join(ROOT, "tests", "e2e", "client")]
from delivery_harness import PostfixSink, PrivatePostfix, free_port, mx_zone  # noqa: E402
from fakeservers import Dnsmasq  # noqa: E402

SINK_IP = "127.0.0.2"
DOMAIN = "sink.test"
RCPT = "bob@" + DOMAIN
SENDER = "bench@example.test"
CGROOT = "/sys/fs/cgroup/cpuacct"


class Cgroup:
    """A cpuacct cgroup (v1) of our own; usage() in seconds of CPU."""

    def __init__(self, name):
        self.path = os.path.join(CGROOT, f"smtpkit-bench-{os.getpid()}-{name}")
        os.mkdir(self.path)

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def usage(self):
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def pids(self):
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def remove(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                os.rmdir(self.path)
                return
            except OSError:
                if time.monotonic() > deadline:
                    for pid in self.pids():  # leftovers go back to the root group
                        with open(os.path.join(CGROOT, "cgroup.procs"), "w") as f:
                            f.write(str(pid))
                    deadline = time.monotonic() + 5
                time.sleep(0.1)


def descendants(pid):
    """pid and every process below it (from /proc/*/stat)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def wait_listening(ip, port, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=0.5) as s:
                s.settimeout(5)
                if s.recv(100).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start listening on {ip}:{port}")


class SmtpkitRelay:
    name = "smtpkit"

    def __init__(self, binary, sink, work):
        self.binary = binary
        self.work = os.path.join(work, "smtpkit")
        os.makedirs(self.work)
        os.chmod(self.work, 0o755)
        self.queue = os.path.join(self.work, "queue")
        self.ip, self.port = "127.0.0.1", free_port("127.0.0.1")
        self.dns = Dnsmasq(self.work, mx_zone({DOMAIN: [(10, "mx." + DOMAIN, SINK_IP)]}))
        self.sink = sink
        self.proc = None

    def settings(self):
        return ("trusted_networks = [ \"127.0.0.0/8\" ]; relay_queue; delivery.dns_servers "
                "(private dnsmasq: MX of sink.test -> 127.0.0.2); delivery.smtp_port = sink "
                "port; every other delivery setting at its default (connections_per_destination"
                " 20, max_connections 100, messages_per_connection 100, recipients_per_"
                "transaction 50)")

    def __enter__(self):
        self.dns.__enter__()
        user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        conf = os.path.join(self.work, "smtpkit.conf")
        with open(conf, "w") as f:
            f.write(f"""server_name = "mx.example.test";
user = "{user}";
mail_root = "{self.work}/mail";
log = "stderr";
limits = {{ connections = 1000; connections_per_ip = 1000; }};
listeners = ( {{ address = "{self.ip}"; port = {self.port}; }} );
domains = [ "example.test" ];
mailboxes = ( {{ address = "alice@example.test"; maildir = "alice"; }} );
trusted_networks = [ "127.0.0.0/8" ];
relay_queue = "{self.queue}";
delivery = {{
  dns_servers = [ "{self.dns.server}" ];
  smtp_port = {self.sink.port};
}};
""")
        os.chmod(conf, 0o644)
        self.logf = open(os.path.join(self.work, "server.log"), "wb")
        self.proc = subprocess.Popen([self.binary, "serve", "-c", conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        wait_listening(self.ip, self.port, "smtpkit serve")
        return self

    def pids(self):
        return [self.proc.pid]

    def queue_empty(self):
        d = os.path.join(self.queue, "env")
        return not (os.path.isdir(d) and os.listdir(d))

    def log(self):
        with open(os.path.join(self.work, "server.log"), errors="replace") as f:
            return f.read()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logf.close()
        self.dns.__exit__(None, None, None)


class PostfixRelay:
    name = "postfix"

    def __init__(self, sink, work):
        self.ip = "127.0.0.3"
        extra = (f"relayhost = [{SINK_IP}]:{sink.port}\n"
                 "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n")
        self.pf = PrivatePostfix(self.ip, domains=("postfix.test",), extra_main=extra)
        self.port = self.pf.port

    def settings(self):
        return (f"mynetworks = 127.0.0.0/8; smtpd_relay_restrictions = permit_mynetworks, "
                f"reject_unauth_destination; relayhost = [{SINK_IP}]:PORT; every other "
                "setting at Postfix's default (default_process_limit 100, "
                "default_destination_concurrency_limit 20, smtp connection cache on demand)")

    def __enter__(self):
        self.pf.__enter__()
        return self

    def pids(self):
        with open(os.path.join(self.pf.queue, "pid", "master.pid")) as f:
            return descendants(int(f.read().split()[0]))

    def queue_empty(self):
        for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
            for _, _, files in os.walk(os.path.join(self.pf.queue, sub)):
                if files:
                    return False
        return True

    def log(self):
        return self.pf.log()

    def __exit__(self, *exc):
        self.pf.__exit__()


def sink_state(sink):
    """(number of messages the sink dumped, newest mtime in seconds)."""
    n, newest = 0, 0
    for e in os.scandir(sink.dir):
        st = e.stat()
        if st.st_size > 0:
            n += 1
            newest = max(newest, st.st_mtime_ns)
    return n, newest / 1e9


def one(system_name, args, work):
    sink = PostfixSink(work, ip=SINK_IP)
    with sink:
        system = (SmtpkitRelay(args.smtpkit, sink, work) if system_name == "smtpkit"
                  else PostfixRelay(sink, work))
        cg = Cgroup(system_name)
        try:
            with system:
                for pid in system.pids():
                    cg.add(pid)
                cmd = [args.smtpkit, "bench", "-s", f"{system.ip}:{system.port}", "--to", RCPT,
                       "-f", SENDER, "-c", str(args.conc), "-n", str(args.msgs), "--size",
                       str(args.size), "--per-connection", str(args.per), "--duration",
                       str(args.time), "--json"]
                cpu0 = cg.usage()
                ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.time()
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.time + 60)
                t_submitted = time.time()
                ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                try:
                    bench = json.loads(r.stdout)
                except ValueError:
                    bench = {}
                accepted = bench.get("messages", {}).get("accepted")
                deadline = time.monotonic() + args.wait
                while True:
                    n, newest = sink_state(sink)
                    if (n >= args.msgs and system.queue_empty()) or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                cpu1 = cg.usage()
                n, newest = sink_state(sink)
                log = system.log()
        finally:
            cg.remove()
    elapsed = newest - t0 if n else float("nan")
    res = {
        "system": system_name, "settings": system.settings(), "command": " ".join(cmd),
        "bench_exit": r.returncode, "submitted": accepted, "delivered": n,
        "submit_s": round(t_submitted - t0, 3), "elapsed_s": round(elapsed, 3),
        "msgs_per_s": round(n / elapsed, 1) if n else 0.0,
        "server_cpu_s": round(cpu1 - cpu0, 3),
        "cpu_ms_per_msg": round(1000 * (cpu1 - cpu0) / n, 3) if n else float("nan"),
        "client_cpu_s": round(ch1.ru_utime + ch1.ru_stime - ch0.ru_utime - ch0.ru_stime, 3),
        "ok": r.returncode == 0 and accepted == args.msgs and n == args.msgs,
    }
    if not res["ok"]:
        res["bench_output"] = r.stdout[-2000:] + r.stderr[-2000:]
        res["server_log_tail"] = log[-3000:]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smtpkit", required=True, help="the smtpkit binary")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conc", type=int, default=50)
    ap.add_argument("--msgs", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--per", type=int, default=10, help="messages per connection")
    ap.add_argument("--time", type=int, default=120, help="bound on each submission (s)")
    ap.add_argument("--wait", type=int, default=300, help="bound on the deliveries (s)")
    ap.add_argument("--only", choices=("smtpkit", "postfix"))
    ap.add_argument("--keep", action="store_true", help="keep the logs (temporary folders)")
    args = ap.parse_args()
    if not (1 <= args.runs <= 10 and 1 <= args.msgs <= 100000 and 1 <= args.conc <= 1000):
        sys.exit("bounds: 1..10 runs, 1..100000 messages, 1..1000 sessions")
    if os.geteuid() != 0:
        sys.exit("needs root: Postfix's master and the cpuacct cgroup")
    # `timeout` (bench/delivery.sh) sends SIGTERM: unwind, so that Postfix is
    # stopped, the sink and dnsmasq end and the cgroup is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    for run in range(1, args.runs + 1):
        # alternate the order so neither system always runs on a warmer cache
        order = ["smtpkit", "postfix"] if run % 2 else ["postfix", "smtpkit"]
        if args.only:
            order = [args.only]
        for name in order:
            work = tempfile.mkdtemp(prefix=f"smtpkit-benchdel-{name}-")
            os.chmod(work, 0o755)
            try:
                res = one(name, args, work)
            finally:
                if args.keep:
                    print("kept:", work)
                else:
                    shutil.rmtree(work, ignore_errors=True)
            res["run"] = run
            results.append(res)
            print(f"run {run} {name:8s} submitted {res['submitted']} delivered "
                  f"{res['delivered']} in {res['elapsed_s']:.2f} s (submission "
                  f"{res['submit_s']:.2f} s): {res['msgs_per_s']:.0f} msgs/s, server CPU "
                  f"{res['server_cpu_s']:.2f} s = {res['cpu_ms_per_msg']:.3f} ms/msg, "
                  f"client CPU {res['client_cpu_s']:.2f} s, load "
                  f"{open('/proc/loadavg').read().split()[0]}"
                  + ("" if res["ok"] else "  NOT ALL ACCOUNTED FOR"), flush=True)
            if not res["ok"]:
                print(res.get("bench_output", ""), res.get("server_log_tail", ""),
                      file=sys.stderr)
    print()
    for name in ("smtpkit", "postfix"):
        rs = [r for r in results if r["system"] == name]
        if rs:
            print(f"{name}: median {statistics.median(r['msgs_per_s'] for r in rs):.0f} msgs/s, "
                  f"median {statistics.median(r['cpu_ms_per_msg'] for r in rs):.3f} ms CPU/msg; "
                  f"settings: {rs[0]['settings']}")
            print(f"  command: {rs[0]['command']}")
    sk = [r["msgs_per_s"] for r in results if r["system"] == "smtpkit"]
    pf = [r["msgs_per_s"] for r in results if r["system"] == "postfix"]
    if sk and pf:
        print(f"ratio of medians smtpkit/postfix: "
              f"{statistics.median(sk) / statistics.median(pf):.2f}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
