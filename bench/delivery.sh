#!/usr/bin/env bash
# bench/delivery.sh - the outbound delivery measurement quoted in
# docs/BENCHMARKS.md ("Outbound delivery"): smtpkit and Postfix side by side.
#
# Builds the release binary, prints the machine and what one durable file
# costs on the disk of /tmp (as bench/run.sh does), then runs
# bench/delivery.py: RUNS rounds, each submitting MSGS messages of SIZE
# octets (CONC sessions, PER per connection, `smtpkit bench`) from loopback
# to `smtpkit serve` and to a private Postfix in turn (the order alternates
# from one round to the next), each relaying to a fresh Postfix `smtp-sink`
# on 127.0.0.2; msgs/s from the first submission to the last delivery at
# the sink, every message counted there, server CPU from a cpuacct cgroup
# per system. fsync on for both: smtpkit always syncs the queued message
# and its record before its 250, Postfix its queue file.
#
# Loopback only; needs root (Postfix's master, the cgroup) and the
# postfix and dnsmasq packages (scripts/deps.sh). Bounded: TIME seconds per
# submission, WAIT seconds for the deliveries, `timeout` around the whole.
# Defaults: RUNS=3 MSGS=5000 SIZE=1024 CONC=50 PER=10 TIME=120 WAIT=300.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MSGS=${MSGS:-5000}
SIZE=${SIZE:-1024}
CONC=${CONC:-50}
PER=${PER:-10}
TIME=${TIME:-120}
WAIT=${WAIT:-300}
PYTHON=${PYTHON:-/usr/bin/python3}

make -j2 all >/dev/null
BIN=$PWD/build/release/smtpkit

echo "== machine"
echo "cpus: $(nproc)  model: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "kernel: $(uname -r)"
echo "postfix: $(postconf -d -h mail_version 2>/dev/null || echo '?')"
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
PROBE=$(mktemp -d "${TMPDIR:-/tmp}/smtpkit-fsync.XXXXXX")
trap 'rm -rf "$PROBE"' EXIT
echo "queue filesystem: $(df -T "$PROBE" | awk 'NR==2 {print $1, $2}')"
"$PYTHON" - "$PROBE" <<'PYEOF'
import os, sys, time
d = os.path.join(sys.argv[1], "fsync-probe")
os.mkdir(d)
lat = []
for i in range(200):
    t = time.perf_counter()
    fd = os.open(f"{d}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"x" * 1400)
    os.fsync(fd)
    os.close(fd)
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print("disk: write + fsync + directory fsync, one at a time: p50 %.2f ms, p90 %.2f ms, max %.2f ms"
      % (lat[99], lat[179], lat[-1]))
PYEOF
echo

timeout $(((TIME + WAIT + 120) * 2 * RUNS)) \
    "$PYTHON" bench/delivery.py --smtpkit "$BIN" --runs "$RUNS" --msgs "$MSGS" \
    --size "$SIZE" --conc "$CONC" --per "$PER" --time "$TIME" --wait "$WAIT" "$@"
