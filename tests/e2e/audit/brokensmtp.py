"""A deliberately broken SMTP server for the audit tests: it ends command
lines at a bare LF, answers every command with a plain "250 OK" (no
enhanced code although it offers ENHANCEDSTATUSCODES), accepts RCPT before
MAIL, relays for anyone, answers HELO with the EHLO list and DATA with 354
in any state. It counts the messages whose data it saw end, so a test can
show that the audit delivered nothing.

    srv = BrokenServer().start()   # srv.port; srv.completed_messages
    ...
    srv.stop()
"""

import socket
import threading

EHLO_LINES = [b"broken.test", b"PIPELINING", b"SIZE 1000000", b"ENHANCEDSTATUSCODES"]


def multiline(code, lines):
    out = b""
    for i, line in enumerate(lines):
        sep = b" " if i == len(lines) - 1 else b"-"
        out += str(code).encode() + sep + line + b"\r\n"
    return out


class BrokenServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.completed_messages = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.greeting = b"220 broken.test ESMTP\r\n"
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        conn.settimeout(10)
        buf = b""
        data_mode = False
        try:
            conn.sendall(self.greeting)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while True:
                    if data_mode:
                        # the end of data is "." alone on a line, any line end
                        end = None
                        for marker in (b"\r\n.\r\n", b"\n.\n", b"\n.\r\n", b"\r\n.\n"):
                            i = buf.find(marker)
                            if i >= 0 and (end is None or i < end[0]):
                                end = (i, len(marker))
                        if end is None:
                            break
                        buf = buf[end[0] + end[1]:]
                        data_mode = False
                        with self.lock:
                            self.completed_messages += 1
                        conn.sendall(b"250 OK queued\r\n")
                        continue
                    lf = buf.find(b"\n")  # the bug: a bare LF ends the line
                    if lf < 0:
                        break
                    line, buf = buf[:lf].rstrip(b"\r"), buf[lf + 1:]
                    verb = line.split(b" ", 1)[0].upper()
                    if verb == b"EHLO" or verb == b"HELO":
                        conn.sendall(multiline(250, EHLO_LINES))  # HELO too: wrong
                    elif verb == b"DATA":
                        conn.sendall(b"354 go ahead\r\n")  # in any state: wrong
                        data_mode = True
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 OK\r\n")  # everything, no enhanced code
        except OSError:
            return
        finally:
            conn.close()
