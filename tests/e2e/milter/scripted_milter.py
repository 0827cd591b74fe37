"""A milter written for the tests: it speaks the real Sendmail milter
protocol (version 6: 4-octet length, command octet, data) on a loopback
port and decides from what the message says, so each test picks its
behaviour with the sender, a recipient or the Subject:

    MAIL FROM <tempfail@...>        SMFIR_TEMPFAIL to MAIL
    RCPT TO <refuse-...@...>        SMFIR_REPLYCODE "550 5.7.1 Recipient refused by scripted milter"
    RCPT TO <badcode-...@...>       SMFIR_REPLYCODE "550 4.7.1 ..." (class mismatch: not usable)
    RCPT TO <ctrl-...@...>          SMFIR_REPLYCODE "550 5.7.1 bad\\x01text"
    Subject "reject"                SMFIR_REPLYCODE "554 5.7.1 Spam detected by scripted milter" at end of message
    Subject "tempfail"              SMFIR_TEMPFAIL at end of message
    Subject "discard"               SMFIR_DISCARD at end of message
    Subject "headers"               add X-Added, insert X-Inserted at 0, change Subject,
                                    delete X-Remove-Me, then SMFIR_ACCEPT
    Subject "replace"               SMFIR_REPLBODY, then SMFIR_CONTINUE
    Subject "quarantine"            SMFIR_QUARANTINE "held by test", then SMFIR_CONTINUE
    Subject "garbage"               garbage bytes instead of a reply at end of message
    Subject "close"                 closes the connection on the first body chunk
    Subject "slow"                  answers the end of message after `slow` seconds (2)

Everything received is recorded in `events` (command letter, decoded
fields) for the tests to check what the server sent.
"""

import os
import socket
import struct
import threading
import time

SMFIF_ADDHDRS, SMFIF_CHGBODY, SMFIF_CHGHDRS, SMFIF_QUARANTINE = 0x01, 0x02, 0x10, 0x20


def packet(cmd, data=b""):
    return struct.pack("!I", len(data) + 1) + cmd + data


class ScriptedMilter:
    def __init__(self, protocol_flags=0, unix_path=None, slow=2.0):
        self.unix_path = unix_path
        self.slow = slow
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(str(unix_path))
            os.chmod(unix_path, 0o666)  # the server runs as nobody
            self.port = None
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.protocol_flags = protocol_flags
        self.events = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def spec(self):
        return f"unix:{self.unix_path}" if self.unix_path else f"inet:127.0.0.1:{self.port}"

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def record(self, *ev):
        with self.lock:
            self.events.append(ev)

    def seen(self, cmd):
        with self.lock:
            return [e for e in self.events if e[0] == cmd]

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _serve(self, conn):
        conn.settimeout(30)
        state = {"subject": "", "sender": ""}
        try:
            while True:
                (length,) = struct.unpack("!I", self._read(conn, 4))
                body = self._read(conn, length)
                cmd, data = body[:1], body[1:]
                if not self._handle(conn, cmd, data, state):
                    return
        except (EOFError, OSError):
            return
        finally:
            conn.close()

    def _handle(self, conn, cmd, data, state):
        send = conn.sendall
        fields = data.split(b"\0")
        if cmd == b"O":
            version, actions, proto = struct.unpack("!III", data[:12])
            self.record("O", version, actions, proto)
            want = SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_CHGHDRS | SMFIF_QUARANTINE
            send(packet(b"O", struct.pack("!III", 6, want & actions, self.protocol_flags & proto)))
        elif cmd == b"D":
            pairs = data[1:].split(b"\0")
            macros = dict(zip(pairs[0::2], pairs[1::2]))
            self.record("D", chr(data[0]), {k.decode(): v.decode() for k, v in macros.items()})
        elif cmd == b"C":
            self.record("C", fields[0].decode())
            send(packet(b"c"))
        elif cmd == b"H":
            self.record("H", fields[0].decode())
            send(packet(b"c"))
        elif cmd == b"M":
            sender = fields[0].decode()
            state["sender"] = sender
            self.record("M", sender)
            send(packet(b"t" if sender.startswith("<tempfail@") else b"c"))
        elif cmd == b"R":
            rcpt = fields[0].decode()
            self.record("R", rcpt)
            if rcpt.startswith("<refuse-"):
                send(packet(b"y", b"550 5.7.1 Recipient refused by scripted milter\0"))
            elif rcpt.startswith("<badcode-"):
                send(packet(b"y", b"550 4.7.1 Mismatched enhanced code\0"))
            elif rcpt.startswith("<ctrl-"):
                send(packet(b"y", b"550 5.7.1 bad\x01text\0"))
            else:
                send(packet(b"c"))
        elif cmd == b"T":
            self.record("T")
            send(packet(b"c"))
        elif cmd == b"L":
            name, value = fields[0].decode(), fields[1].decode()
            self.record("L", name, value)
            if name.lower() == "subject":
                state["subject"] = value
            send(packet(b"c"))
        elif cmd == b"N":
            self.record("N")
            send(packet(b"c"))
        elif cmd == b"B":
            self.record("B", data)
            if state["subject"] == "close":
                return False
            send(packet(b"c"))
        elif cmd == b"E":
            self.record("E")
            subj = state["subject"]
            if subj == "reject":
                send(packet(b"y", b"554 5.7.1 Spam detected by scripted milter\0"))
            elif subj == "tempfail":
                send(packet(b"t"))
            elif subj == "discard":
                send(packet(b"d"))
            elif subj == "headers":
                send(packet(b"h", b"X-Added\0added by milter\0"))
                send(packet(b"i", struct.pack("!I", 0) + b"X-Inserted\0at the top\0"))
                send(packet(b"m", struct.pack("!I", 1) + b"Subject\0[tagged] headers\0"))
                send(packet(b"m", struct.pack("!I", 1) + b"X-Remove-Me\0\0"))
                send(packet(b"a"))
            elif subj == "replace":
                send(packet(b"p"))
                send(packet(b"b", b"replaced body line 1\r\n"))
                send(packet(b"b", b"replaced body line 2\n"))
                send(packet(b"c"))
            elif subj == "quarantine":
                send(packet(b"q", b"held by test\0"))
                send(packet(b"c"))
            elif subj == "slow":
                time.sleep(self.slow)
                send(packet(b"c"))
            elif subj == "garbage":
                send(b"\xff\xff\xff\xffthis is not a milter reply")
            else:
                send(packet(b"c"))
            state["subject"] = ""
        elif cmd == b"A":
            self.record("A")
            state["subject"] = ""
        elif cmd == b"Q":
            self.record("Q")
            return False
        else:
            self.record("?", cmd)
        return True
