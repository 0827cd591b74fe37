"""Golden SMTP transcripts: parse a .smtp scenario, replay it against a
running `smtpkit serve` over a raw socket and compare every reply byte for
byte (the idea of Postfix's .in/.ref files and OpenSMTPD's smtpscript).

File format (tests/e2e/transcripts/README.md says the same for readers):

    # What this scenario shows (the first line is a comment)
    ! server {"limits": {"errors": 50}}   keyword arguments for the server fixture (JSON)
    S: 220 mx.example.test ESMTP smtpkit  a line the server must send (CRLF added)
    S*3: 250 2.1.5 Ok                     the same line three times
    C: EHLO client.test                   a line the client sends (CRLF added)
    D: BDAT 5\\r\\nhello                    exact client bytes (nothing added)
    ! send                                send the pending client bytes now
    ! sleep 0.5                           pause (seconds)
    ! eof                                 the server must close the connection now
    ! log event=message .* result=250     the server log must match (a regex)
    ! stored alice 1                      Maildir "alice" holds this many messages

Consecutive C:/D: lines are sent in ONE write when the next S: or
directive comes: that is how a PIPELINING batch is written. Escapes in
C:, D: and S: text: \\r \\n \\t \\\\ \\xHH. In C:/D: text, {N*T} is T
repeated N times. In S: text, {id} matches a message id, {any} any text.

While replaying, a model of the client side (what the server must have
parsed) names the command each reply answers: CONNECT for the greeting,
the verb of the command line, DATA-END for the reply after the final dot,
AUTH for a reply to an AUTH response line. The runner uses it to check
the reply code against the registry and the enhanced-code rules.
"""

import re
import socket
import time
from pathlib import Path

ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|r|n|t|\\)")
REPEAT = re.compile(rb"\{(\d+)\*([^}]*)\}")
PATTERNS = {"id": rb"[A-Za-z0-9]+", "any": rb".*"}
REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -])(.*)$", re.S)
ENHANCED = re.compile(rb"^([245])\.[0-9]{1,3}\.[0-9]{1,3} ")

VERBS = {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN", "HELP",
         "NOOP", "QUIT", "STARTTLS", "AUTH", "SEND", "SOML", "SAML", "TURN", "ETRN", "ATRN"}


class TranscriptError(AssertionError):
    pass


def unescape(text, repeat):
    data = text.encode("utf-8")
    if repeat:
        data = REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), data)

    def one(m):
        e = m.group(1)
        if e[:1] == b"x":
            return bytes([int(e[1:], 16)])
        return {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}[e]

    return ESCAPE.sub(one, data)


def expected_regex(text):
    """An S: line as a regex over the line's bytes (without CRLF)."""
    out = b""
    pos = 0
    raw = text.encode("utf-8")
    for m in re.finditer(rb"\{(id|any)\}", raw):
        out += re.escape(unescape(raw[pos:m.start()].decode("utf-8"), False))
        out += PATTERNS[m.group(1).decode()]
        pos = m.end()
    out += re.escape(unescape(raw[pos:].decode("utf-8"), False))
    return re.compile(out + rb"\Z", re.S)


class Step:
    def __init__(self, kind, arg, lineno):
        self.kind, self.arg, self.lineno = kind, arg, lineno


class Transcript:
    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.stem
        self.server_kw = {}
        self.steps = []
        self.title = None
        import json
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if n == 1:
                if not line.startswith("# "):
                    raise TranscriptError(f"{self.path}:1: the first line must be a '# ' comment")
                self.title = line[2:].strip()
            if not line.strip() or line.startswith("#"):
                continue
            tag, _, rest = line.partition(" ")
            if tag in ("C:", "D:"):
                data = unescape(rest, True) + (b"\r\n" if tag == "C:" else b"")
                self.steps.append(Step("send", data, n))
            elif tag == "S:" or re.fullmatch(r"S\*[0-9]+:", tag):
                times = int(tag[2:-1]) if tag != "S:" else 1
                for _ in range(times):
                    self.steps.append(Step("expect", (rest, expected_regex(rest)), n))
            elif tag == "!":
                word, _, arg = rest.partition(" ")
                if word == "server":
                    self.server_kw = json.loads(arg)
                elif word in ("send", "eof", "sleep", "log", "stored"):
                    kind = "flush" if word == "send" else word
                    self.steps.append(Step(kind, arg.strip(), n))
                else:
                    raise TranscriptError(f"{self.path}:{n}: unknown directive {word!r}")
            else:
                raise TranscriptError(f"{self.path}:{n}: cannot parse {line!r}")

    def __repr__(self):
        return f"Transcript({self.name})"

    def replies(self):
        """(command, code) of every reply the file expects, named by the
        client model from the file alone (no server needed)."""
        model = ClientModel()
        out = []
        for step in self.steps:
            if step.kind == "send":
                model.sent(step.arg)
            elif step.kind == "expect":
                m = REPLY_LINE.match(step.arg[0].encode("utf-8"))
                if m and m.group(2) == b" ":
                    code = int(m.group(1))
                    out.append((model.reply(code), code))
        return out


class ClientModel:
    """What the server has been sent, parsed the way the server parses it,
    to name the command each reply answers."""

    def __init__(self):
        self.pending = b""
        self.mode = "command"  # command, data, bdat
        self.bdat_left = 0
        self.auth_lines = False
        self.owners = ["CONNECT"]

    def sent(self, data):
        self.pending += data
        self._advance()

    def _advance(self):
        while self.pending:
            if self.mode == "bdat":
                k = min(self.bdat_left, len(self.pending))
                self.pending = self.pending[k:]
                self.bdat_left -= k
                if self.bdat_left == 0:
                    self.mode = "command"
                continue
            if self.mode == "data":
                end = self.pending.find(b"\r\n.\r\n")
                if end < 0:
                    # keep the tail that may start the end marker
                    self.pending = self.pending[-4:]
                    return
                self.pending = self.pending[end + 5:]
                self.owners.append("DATA-END")
                self.mode = "command"
                continue
            if self.mode == "await-354":
                return  # whether data follows depends on the reply to DATA
            # only CRLF ends a command line (RFC 5321 2.3.8), as in the server
            lf = self.pending.find(b"\r\n")
            if lf < 0:
                return
            line, self.pending = self.pending[:lf], self.pending[lf + 2:]
            if self.auth_lines:
                self.owners.append("AUTH")
                self.auth_lines = False  # until the next 334
                continue
            word = line.rstrip(b"\r").split(b" ", 1)[0].decode("latin-1").upper()
            verb = word if word in VERBS else "UNKNOWN"
            self.owners.append(verb)
            if verb == "DATA":
                self.mode = "await-354"
            elif verb == "BDAT":
                m = re.match(rb"BDAT +([0-9]+)( +LAST)? *\r?$", line, re.I)
                if m and len(m.group(1)) <= 20:
                    self.bdat_left = int(m.group(1))
                    if self.bdat_left:
                        self.mode = "bdat"
                elif m:
                    self.bdat_left = 1 << 64  # more than anyone sends
                    self.mode = "bdat"

    def reply(self, code):
        """The command this reply answers (called once per complete reply)."""
        owner = self.owners.pop(0) if self.owners else "UNSOLICITED"
        if owner == "DATA":
            self.mode = "data" if code == 354 else "command"
            # a DATA refused: whatever followed is read as commands
            if self.mode == "data":
                self.pending = b"\r\n" + self.pending  # the DATA line's CRLF
            self._advance()
        if code == 334:
            self.auth_lines = True  # the next line is an AUTH response
            self._advance()
        return owner


def read_line(sock, buf, timeout):
    """One line up to and including LF; returns (line or None at EOF, buf)."""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            if buf:
                return buf, b""
            return None, b""
        buf += chunk
    i = buf.index(b"\n") + 1
    return buf[:i], buf[i:]


class Replay:
    """Replay one transcript. `check_reply(code, owner, lines)` is called
    for every complete reply; it raises on a rule violation."""

    def __init__(self, transcript, srv, check_reply, timeout=5.0):
        self.t = transcript
        self.srv = srv
        self.check_reply = check_reply
        self.timeout = timeout
        self.replies = []  # (owner, code, lines)

    def fail(self, step, msg):
        raise TranscriptError(f"{self.t.path}:{step.lineno}: {msg}")

    def run(self):
        sock = socket.create_connection((self.srv.host, self.srv.port), timeout=self.timeout)
        model = ClientModel()
        outgoing = b""
        buf = b""
        current = []  # lines of the reply being read
        try:
            for step in self.t.steps:
                if step.kind == "send":
                    outgoing += step.arg
                    continue
                if outgoing:
                    try:
                        sock.sendall(outgoing)
                    except (BrokenPipeError, ConnectionResetError) as e:
                        self.fail(step, f"the server closed before it got our bytes ({e})")
                    model.sent(outgoing)
                    outgoing = b""
                if step.kind == "sleep":
                    time.sleep(float(step.arg))
                elif step.kind == "expect":
                    text, rx = step.arg
                    try:
                        line, buf = read_line(sock, buf, self.timeout)
                    except socket.timeout:
                        self.fail(step, f"timed out waiting for {text!r}")
                    if line is None:
                        self.fail(step, f"connection closed, expected {text!r}")
                    if not line.endswith(b"\r\n") or b"\r" in line[:-2] or b"\n" in line[:-1]:
                        self.fail(step, f"reply line not ended by exactly CRLF: {line!r}")
                    body = line[:-2]
                    if not rx.match(body):
                        self.fail(step, f"expected {text!r}\n     got {body.decode('latin-1')!r}")
                    m = REPLY_LINE.match(body)
                    if not m:
                        self.fail(step, f"not an SMTP reply line: {body!r}")
                    if current and current[0][:3] != body[:3]:
                        self.fail(step, "reply code changes inside a multi-line reply")
                    current.append(body)
                    if m.group(2) == b" ":
                        code = int(m.group(1))
                        owner = model.reply(code)
                        try:
                            self.check_reply(code, owner, current)
                        except AssertionError as e:
                            self.fail(step, str(e))
                        self.replies.append((owner, code, list(current)))
                        current = []
                elif step.kind == "eof":
                    try:
                        line, buf = read_line(sock, buf, self.timeout)
                    except socket.timeout:
                        self.fail(step, "the server did not close the connection")
                    if line is not None:
                        self.fail(step, f"expected the close, got {line!r}")
                elif step.kind == "log":
                    try:
                        self.srv.wait_log(step.arg, timeout=self.timeout)
                    except AssertionError:
                        self.fail(step, f"log never matched {step.arg!r}:\n{self.srv.log()}")
                elif step.kind == "stored":
                    name, count = step.arg.split()
                    got = len(self.srv.files(name, "new"))
                    if got != int(count):
                        self.fail(step, f"Maildir {name}: {got} messages, expected {count}")
            if outgoing:
                sock.sendall(outgoing)
                model.sent(outgoing)
            if current:
                raise TranscriptError(f"{self.t.path}: transcript ends inside a reply")
            # RFC 5321 4.2: exactly one reply per command; nothing extra
            try:
                line, buf = read_line(sock, buf, 0.3)
            except socket.timeout:
                line = None
            if line is not None:
                raise TranscriptError(f"{self.t.path}: unexpected extra output {line!r}")
        finally:
            sock.close()
        return self.replies
