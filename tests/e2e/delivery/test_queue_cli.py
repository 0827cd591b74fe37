"""`smtpkit queue` against a real `smtpkit serve` (smtpkit-queue(1)):
messages relayed from a trusted network land in relay_queue; `list` and
`list --json` show them with every recipient, `show` gives the envelope and
the headers; hold, release and delete change the envelope files themselves
(under the queue lock) and tell the running server through its control
socket (<relay_queue>/control), which answers KICK and refuses garbage;
without a server they still work on the files, while flush and bounce exit
4; a `queue hold` started while another process holds the lock waits for
it and then succeeds; errors (unknown id, malformed id, no queue) exit with
their documented status."""

import fcntl
import json
import os
import pwd
import re
import smtplib
import socket
import stat
import subprocess
import time
import urllib.parse

import pytest

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: Carol <carol@remote.test>\r\n"
       b"Subject: queued for later\r\n"
       b"\r\n"
       b"body line\r\n")
ID_RE = r"[0-9A-V]{20}"

# Exit statuses (smtpkit-queue(1)).
EXIT_ERROR, EXIT_USAGE, EXIT_NO_MESSAGE, EXIT_NO_SERVER = 1, 2, 3, 4


def relay_server(server, tmp_path, start=True, agent=True):
    queue = tmp_path / "mail" / "queue"
    # The delivery agent finds no DNS answer (a closed port) and only
    # defers: the records stay in the queue. Without it (agent=False) the
    # records stay exactly as the store wrote them.
    extra = (f'trusted_networks = [ "127.0.0.0/8" ];\nrelay_queue = "{queue}";\n'
             'delivery = { dns_servers = [ "127.0.0.1:9" ]; '
             + ('' if agent else 'enabled = false; ') + '};\n')
    srv = server(extra=extra, start=start)
    return srv, queue


def send(srv, rcpts, body=MSG):
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        code, text = s.ehlo("client.test")
        s.mail("alice@example.test")
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, (r, code, msg)
        code, text = s.data(body)
    assert code == 250, text
    return re.search(ID_RE, text.decode()).group(0)


def traversable(path):
    """As root, let the server's user traverse path's ancestors again: a
    pytest session started meanwhile (by anyone on this machine) resets
    /tmp/pytest-of-USER to 0700, and `smtpkit queue` runs as that user."""
    if os.geteuid() != 0:
        return
    for d in [path, *path.parents]:
        if str(d) in ("/", "/tmp"):
            break
        try:
            mode = d.stat().st_mode & 0o777
            if mode & 0o011 != 0o011:
                os.chmod(d, mode | 0o011)
        except FileNotFoundError:
            pass


def queue_cmd(bin_, srv, *args, timeout=30):
    traversable(srv.conf_path.parent)
    return subprocess.run([bin_, "queue", "-c", str(srv.conf_path), *args],
                          capture_output=True, text=True, timeout=timeout)


def read_env(queue, mid):
    """An independent reader of env/<id> (docs/STORE.md): fields, rcpts."""
    lines = (queue / "env" / mid).read_text().split("\n")
    assert lines[0] == "smtpkit-envelope 1" and lines[-2:] == ["end", ""]

    def val(v):
        return "" if v == "-" else urllib.parse.unquote(v)

    fields, rcpts = {}, []
    for line in lines[1:-2]:
        key, rest = line.split(" ", 1)
        if key == "rcpt":
            v = rest.split(" ")
            rcpts.append({"addr": val(v[0]), "state": v[3], "attempts": int(v[4]),
                          "next": int(v[5]), "code": int(v[6]), "enhanced": val(v[7]),
                          "host": val(v[8]), "text": val(v[9])})
        else:
            fields[key] = val(rest)
    return fields, rcpts


def control(queue, data, timeout=5):
    """One exchange on the control socket: bytes out, everything back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(queue / "control"))
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk


def test_list_and_json_show_messages_and_recipients(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    a = send(srv, ["carol@remote.test", "dave@other.test"])
    b = send(srv, ["erin@remote.test"])

    r = queue_cmd(smtpkit_bin, srv, "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head_a = next(i for i, l in enumerate(lines) if l.startswith(a + " "))
    head_b = next(i for i, l in enumerate(lines) if l.startswith(b + " "))
    assert head_a < head_b  # oldest first
    assert re.match(rf"{a}  age \d+s  \d+ octets  from <alice@example\.test>$", lines[head_a])
    assert re.match(r"    <carol@remote\.test>  (pending|deferred)  attempts \d+",
                    lines[head_a + 1]), lines
    assert re.match(r"    <dave@other\.test>  (pending|deferred)  ", lines[head_a + 2]), lines
    assert re.match(r"    <erin@remote\.test>  (pending|deferred)  ", lines[head_b + 1]), lines
    assert lines[-1].startswith("-- 2 messages, 3 recipients"), lines[-1]

    r = queue_cmd(smtpkit_bin, srv, "list", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["broken"] == []
    assert [m["id"] for m in doc["messages"]] == [a, b]
    for m in doc["messages"]:
        fields, rcpts = read_env(queue, m["id"])
        # the size SMTP speaks of (SIZE=, RFC 1870): the message with CRLF
        # line ends; the file keeps LF ones
        raw = (queue / "msg" / m["id"]).read_bytes()
        assert b"\r\n" not in raw
        assert m["size"] == len(raw.replace(b"\n", b"\r\n")) == int(fields["size"])
        assert m["sender"] == "alice@example.test"
        assert m["arrival"] == int(fields["arrival"])
        assert 0 <= m["age"] < 120
        assert [x["address"] for x in m["recipients"]] == [x["addr"] for x in rcpts]
        for x in m["recipients"]:
            assert x["state"] in ("pending", "deferred") and x["final"] is False
            assert x["last_reply"] is None or isinstance(x["last_reply"]["code"], int)

    # the files are the truth: the listing needs no server
    assert srv.stop() == 0
    r2 = queue_cmd(smtpkit_bin, srv, "list", "--json")
    assert r2.returncode == 0 and [m["id"] for m in json.loads(r2.stdout)["messages"]] == [a, b]


def test_show_envelope_and_headers(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    mid = send(srv, ["carol@remote.test", "dave@other.test"])
    r = queue_cmd(smtpkit_bin, srv, "show", mid)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(rf"^id +{mid}$", out, re.M)
    assert re.search(r"^sender +<alice@example\.test>$", out, re.M)
    assert re.search(r"^recipient +<carol@remote\.test>$", out, re.M)
    assert re.search(r"^recipient +<dave@other\.test>$", out, re.M)
    assert re.search(rf"^message +{re.escape(str(queue))}/msg/{mid}$", out, re.M)
    # the header section, trace header first, not the body
    assert re.search(rf"^Received: .*$", out, re.M)
    assert "\nSubject: queued for later\n" in out
    assert "body line" not in out

    r = queue_cmd(smtpkit_bin, srv, "show", mid, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["id"] == mid
    assert [x["address"] for x in doc["recipients"]] == ["carol@remote.test", "dave@other.test"]
    raw = (queue / "msg" / mid).read_bytes()
    assert doc["headers"].encode() == raw[:raw.index(b"\n\n") + 1]  # LF line ends


def test_unknown_and_malformed_ids(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    send(srv, ["carol@remote.test"])
    for cmd in ("show", "hold", "release", "delete", "bounce", "flush"):
        r = queue_cmd(smtpkit_bin, srv, cmd, "0000000000000000NOPE")
        assert r.returncode == EXIT_NO_MESSAGE, (cmd, r.returncode, r.stderr)
        assert "0000000000000000NOPE: no such message in the queue" in r.stderr
    for cmd in ("show", "hold", "release", "delete", "bounce"):
        r = queue_cmd(smtpkit_bin, srv, cmd, "../env/x")
        assert r.returncode == EXIT_USAGE, (cmd, r.returncode, r.stderr)
        assert "is not a queue id" in r.stderr
    r = queue_cmd(smtpkit_bin, srv, "hold")
    assert r.returncode == EXIT_USAGE and "needs a queue id" in r.stderr
    r = queue_cmd(smtpkit_bin, srv, "flush", "bad..domain")
    assert r.returncode == EXIT_USAGE and "is not a domain" in r.stderr
    r = queue_cmd(smtpkit_bin, srv, "frobnicate")
    assert r.returncode == EXIT_USAGE and "unknown command" in r.stderr


def test_hold_release_delete_change_files_and_listing(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    mid = send(srv, ["carol@remote.test", "dave@other.test"])
    other = send(srv, ["erin@remote.test"])
    nobody = pwd.getpwnam(srv.user)

    r = queue_cmd(smtpkit_bin, srv, "hold", mid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{mid}: held (2 recipients)")
    _, rcpts = read_env(queue, mid)
    assert [x["state"] for x in rcpts] == ["held", "held"]
    # written as the server's user, never as root
    assert (queue / "env" / mid).stat().st_uid == nobody.pw_uid
    assert (queue / "lock").stat().st_uid == nobody.pw_uid
    # the running server was told
    srv.wait_log(rf"event=queue-control command=KICK arg={mid} answer=\"OK ")
    listing = queue_cmd(smtpkit_bin, srv, "list").stdout
    assert "    <carol@remote.test>  held  attempts" in listing
    assert listing.splitlines()[-1] == "-- 2 messages, 3 recipients, 2 held"
    # the other message is untouched
    assert read_env(queue, other)[1][0]["state"] in ("pending", "deferred")
    r = queue_cmd(smtpkit_bin, srv, "hold", mid)
    assert r.returncode == 0 and "already held" in r.stdout

    before = int(time.time())
    r = queue_cmd(smtpkit_bin, srv, "release", mid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{mid}: released (2 recipients)")
    _, rcpts = read_env(queue, mid)
    for x in rcpts:
        assert x["state"] in ("pending", "deferred")
        if x["state"] == "pending":  # never tried: due at once
            assert x["next"] <= int(time.time()) and x["next"] >= before - 1
    r = queue_cmd(smtpkit_bin, srv, "release", mid)
    assert r.returncode == 0 and "not held" in r.stdout

    r = queue_cmd(smtpkit_bin, srv, "delete", mid)
    assert r.returncode == 0, r.stderr
    assert not (queue / "env" / mid).exists() and not (queue / "msg" / mid).exists()
    doc = json.loads(queue_cmd(smtpkit_bin, srv, "list", "--json").stdout)
    assert [m["id"] for m in doc["messages"]] == [other]
    r = queue_cmd(smtpkit_bin, srv, "delete", mid)
    assert r.returncode == EXIT_NO_MESSAGE
    srv.wait_log(rf"event=queue-control command=KICK arg={mid} ", count=3)


def test_without_server_files_change_flush_bounce_exit_4(server, smtpkit_bin, tmp_path):
    # no agent: the record is still untouched (pending) when the server stops
    srv, queue = relay_server(server, tmp_path, agent=False)
    mid = send(srv, ["carol@remote.test", "dave@other.test"])
    assert srv.stop() == 0
    assert not (queue / "control").exists()  # removed at the end

    # a recipient tried twice, deferred for an hour with its last reply
    path = queue / "env" / mid
    text = path.read_text()
    later = int(time.time()) + 3600
    text = re.sub(r"^rcpt carol@remote\.test - - pending 0 \d+ 0 - - -$",
                  f"rcpt carol@remote.test - - deferred 2 {later} 451 4.3.0 "
                  "mx.remote.test[192.0.2.1] Try%20later", text, flags=re.M)
    assert "deferred 2" in text
    tmp = queue / "tmp" / "edit"
    tmp.write_text(text)
    os.chown(tmp, path.stat().st_uid, path.stat().st_gid)
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)

    r = queue_cmd(smtpkit_bin, srv, "flush")
    assert r.returncode == EXIT_NO_SERVER, r
    assert "needs the running server" in r.stderr
    r = queue_cmd(smtpkit_bin, srv, "flush", "remote.test")
    assert r.returncode == EXIT_NO_SERVER
    r = queue_cmd(smtpkit_bin, srv, "bounce", mid)
    assert r.returncode == EXIT_NO_SERVER, r
    assert "bounce needs the running server" in r.stderr
    assert path.read_text() == text  # nothing changed

    r = queue_cmd(smtpkit_bin, srv, "hold", mid)
    assert r.returncode == 0, r.stderr
    assert "server is not running" in r.stdout
    _, rcpts = read_env(queue, mid)
    assert [(x["state"], x["attempts"]) for x in rcpts] == [("held", 2), ("held", 0)]
    assert rcpts[0]["next"] == later and rcpts[0]["code"] == 451  # kept for release

    now = int(time.time())
    r = queue_cmd(smtpkit_bin, srv, "release", mid)
    assert r.returncode == 0, r.stderr
    _, rcpts = read_env(queue, mid)
    # tried before: deferred, due now, its history kept; never tried: pending
    assert rcpts[0]["state"] == "deferred" and rcpts[0]["attempts"] == 2
    assert now - 1 <= rcpts[0]["next"] <= int(time.time())
    assert (rcpts[0]["code"], rcpts[0]["enhanced"], rcpts[0]["host"], rcpts[0]["text"]) == \
        (451, "4.3.0", "mx.remote.test[192.0.2.1]", "Try later")
    assert rcpts[1]["state"] == "pending" and rcpts[1]["attempts"] == 0

    listing = queue_cmd(smtpkit_bin, srv, "list").stdout
    assert ('    <carol@remote.test>  deferred  attempts 2  next now  last 451 4.3.0 '
            '"Try later" from mx.remote.test[192.0.2.1]') in listing, listing

    r = queue_cmd(smtpkit_bin, srv, "delete", mid)
    assert r.returncode == 0 and not path.exists()


def test_control_socket_answers_kick_and_rejects_garbage(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    mid = send(srv, ["carol@remote.test"])
    sock = queue / "control"
    st = sock.lstat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == pwd.getpwnam(srv.user).pw_uid

    assert control(queue, f"KICK {mid}\n".encode()).startswith(b"OK ")
    assert control(queue, b"HELO there\r\n") == b"ERR unknown command\n"
    assert control(queue, b"KICK ../../etc/passwd\n") == b"ERR malformed queue id\n"
    assert control(queue, b"KICK\n") == b"ERR a queue id is required\n"
    assert control(queue, b"\x00\xff\x01garbage\n") == b"ERR control byte in command\n"
    assert control(queue, b"K" * 5000) == b"ERR line too long\n"
    # one request per connection: the second line is never answered
    out = control(queue, f"KICK {mid}\nFLUSH\n".encode())
    assert out.count(b"\n") == 1 and out.startswith(b"OK ")
    srv.wait_log(r'event=queue-control command=- arg=- answer="ERR unknown command"')
    # the server still serves mail
    assert send(srv, ["dave@other.test"])
    assert srv.stop() == 0


def test_second_server_on_one_queue_is_refused(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    second = server(extra=f'trusted_networks = [ "127.0.0.0/8" ];\nrelay_queue = "{queue}";\n',
                    start=False)
    p = subprocess.run([smtpkit_bin, "serve", "-c", str(second.conf_path)],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "another server runs on this queue" in p.stdout + p.stderr
    # the first one still owns its socket
    assert control(queue, b"KICK abc\n").startswith(b"OK ")


def test_hold_waits_for_the_lock(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    mid = send(srv, ["carol@remote.test"])
    with open(queue / "lock", "rb") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)  # as the delivery agent would
        # read under the lock: the agent may have deferred the record before
        before = (queue / "env" / mid).read_text()
        traversable(srv.conf_path.parent)
        p = subprocess.Popen([smtpkit_bin, "queue", "-c", str(srv.conf_path), "hold", mid],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert p.poll() is None, p.communicate()  # still waiting
        assert (queue / "env" / mid).read_text() == before
        fcntl.flock(lk, fcntl.LOCK_UN)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert out.startswith(f"{mid}: held")
    assert read_env(queue, mid)[1][0]["state"] == "held"


def test_missing_queue_and_no_relay_queue(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path, start=False)  # never started
    r = queue_cmd(smtpkit_bin, srv, "list")
    assert r.returncode == EXIT_ERROR
    assert f"no queue at {queue}" in r.stderr
    assert not queue.exists()  # looking never creates one

    srv.write_config(extra="")
    r = queue_cmd(smtpkit_bin, srv, "list")
    assert r.returncode == EXIT_ERROR and "sets no relay_queue" in r.stderr
    traversable(tmp_path)
    r = subprocess.run([smtpkit_bin, "queue", "-c", str(tmp_path / "nope.conf"), "list"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == EXIT_ERROR and "nope.conf" in r.stderr


def test_broken_record_is_listed_not_fatal(server, smtpkit_bin, tmp_path):
    srv, queue = relay_server(server, tmp_path)
    good = send(srv, ["carol@remote.test"])
    bad = "0000000000000000BAD0"
    (queue / "msg" / bad).write_bytes(MSG)
    (queue / "env" / bad).write_text("smtpkit-envelope 1\nid " + bad + "\narrival x\n")
    r = queue_cmd(smtpkit_bin, srv, "list")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{bad}  broken: line 3: ", r.stdout, re.M), r.stdout
    assert r.stdout.splitlines()[-1] == "-- 1 message, 1 recipient, 1 broken record"
    doc = json.loads(queue_cmd(smtpkit_bin, srv, "list", "--json").stdout)
    assert [m["id"] for m in doc["messages"]] == [good]
    assert [b["id"] for b in doc["broken"]] == [bad] and doc["broken"][0]["error"].startswith("line 3")
    r = queue_cmd(smtpkit_bin, srv, "show", bad)
    assert r.returncode == EXIT_ERROR and "cannot read its record: line 3" in r.stderr
    r = queue_cmd(smtpkit_bin, srv, "hold", bad)
    assert r.returncode == EXIT_ERROR
    # a broken record can still be deleted
    r = queue_cmd(smtpkit_bin, srv, "delete", bad)
    assert r.returncode == 0 and not (queue / "env" / bad).exists()
