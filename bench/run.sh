#!/usr/bin/env bash
# bench/run.sh - the measurement quoted in docs/BENCHMARKS.md.
#
# Builds the release binary, starts `smtpkit serve` on 127.0.0.1 (a free
# port) with a configuration like etc/smtpkit.conf on a temporary mail
# root, then runs, one after the other:
#   smtpkit bench   50 sessions, 5000 messages, 1 KiB body, 1 per connection
#   smtpkit bench   the same, 10 messages per connection
#   bench/load.py   the same two shapes (Python smtplib, one process per sender)
# and after each run checks that the files in the Maildir match the
# messages counted as accepted. smtpkit always fsyncs (file and
# directories) before its 250: every figure is with fsync on.
#
# Loopback only; every run is bounded by --duration / --time and a
# `timeout`; the server is stopped and the temporary directory removed on
# exit. Shape can be changed: CONC=50 MSGS=5000 SIZE=1024 DURATION=120.
set -euo pipefail

cd "$(dirname "$0")/.."
CONC=${CONC:-50}
MSGS=${MSGS:-5000}
SIZE=${SIZE:-1024}
DURATION=${DURATION:-120}
PYTHON=${PYTHON:-/usr/bin/python3}

make -j2 all >/dev/null
BIN=$PWD/build/release/smtpkit

WORK=$(mktemp -d "${TMPDIR:-/tmp}/smtpkit-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$(id -u)" = 0 ]; then
    RUN_USER=nobody
    chmod 755 "$WORK"
else
    RUN_USER=$(id -un)
fi
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# As etc/smtpkit.conf, except: a free loopback port, the temporary mail
# root, and connections_per_ip raised above the 50 concurrent senders
# (the sample's 20 would answer 421 to the others).
cat >"$WORK/smtpkit.conf" <<EOF
server_name = "mx.example.test";
user = "$RUN_USER";
mail_root = "$WORK/mail";
log = "stderr";
limits = {
    message_size = 10485760;
    recipients = 100;
    line_length = 512;
    errors = 10;
    connections = 1000;
    connections_per_ip = 1000;
    command_timeout = 300;
    data_timeout = 180;
    shutdown_grace = 30;
};
listeners = ( { address = "127.0.0.1"; port = $PORT; } );
domains = [ "example.test" ];
mailboxes = (
    { address = "alice@example.test"; maildir = "alice"; },
    { address = "bob@example.test";   maildir = "bob"; }
);
aliases = ( { address = "postmaster@example.test"; to = "alice@example.test"; } );
EOF
chmod 644 "$WORK/smtpkit.conf"

"$BIN" serve -c "$WORK/smtpkit.conf" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 1 100); do
    if "$PYTHON" - "$PORT" <<'EOF' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
assert s.recv(512).startswith(b"220")
s.sendall(b"QUIT\r\n"); s.recv(512)
EOF
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$i" = 100 ]; then
        echo "smtpkit serve did not start:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.1
done

NEW=$WORK/mail/alice/new
count() { find "$NEW" -type f 2>/dev/null | wc -l; }

echo "== machine"
echo "cpus: $(nproc)  model: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "kernel: $(uname -r)"
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
echo "mail root filesystem: $(df -T "$WORK" | awk 'NR==2 {print $1, $2}')"
# What one durable file costs on this disk, as the server does it for each
# message (write, fsync, fsync of the directory), one at a time.
"$PYTHON" - "$WORK" <<'PYEOF'
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
echo "server: $BIN serve on 127.0.0.1:$PORT, fsync on (always), user $RUN_USER"
echo

# CPU time in clock ticks: the server's (utime + stime of its process) and
# that of this shell's finished children (each client run, waited for).
TCK=$(getconf CLK_TCK)
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
child_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }
ticks_to_s() { awk -v t="$1" -v h="$TCK" 'BEGIN {printf "%.2f", t / h}'; }

STATUS=0
run() { # label, command...
    local label=$1
    shift
    echo "== $label"
    echo "\$ $*"
    local before after out rc=0 s0 s1 c0 c1
    before=$(count)
    s0=$(server_ticks)
    c0=$(child_ticks)
    out=$(timeout $((DURATION + 120)) "$@" 2>&1) || rc=$?
    c1=$(child_ticks)
    s1=$(server_ticks)
    echo "$out"
    after=$(count)
    echo "files delivered by this run: $((after - before)) (exit status $rc)"
    echo "cpu seconds (user+sys) during the run: server $(ticks_to_s $((s1 - s0))), client $(ticks_to_s $((c1 - c0)))"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    [ "$rc" = 0 ] || STATUS=1
    echo
}

for per in 1 10; do
    run "smtpkit bench: $CONC sessions, $MSGS messages, $SIZE octets, $per per connection" \
        "$BIN" bench --server "127.0.0.1:$PORT" --to alice@example.test \
        -c "$CONC" -n "$MSGS" --size "$SIZE" --per-connection "$per" --duration "$DURATION"
done
for per in 1 10; do
    run "bench/load.py: $CONC senders, $MSGS messages, $SIZE octets, $per per connection" \
        "$PYTHON" bench/load.py --port "$PORT" --rcpt alice@example.test \
        --senders "$CONC" --messages "$MSGS" --size "$SIZE" --per-connection "$per" \
        --time "$DURATION"
done

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=
echo "== server"
grep 'event=stop' "$WORK/server.log" | tail -n1 | sed 's/^.* info //' || true
exit $STATUS
