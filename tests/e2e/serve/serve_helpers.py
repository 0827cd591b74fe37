"""Helpers for the `smtpkit serve` end-to-end tests."""

import re

TRACE_FIELD = re.compile(rb"^(Return-Path|Received):", re.IGNORECASE)


def rfc822(stored):
    """A stored file (LF line ends, the Maildir convention) in its RFC 822
    form (CRLF); the file must hold no CRLF."""
    assert b"\r\n" not in stored, "a stored file with CRLF line ends"
    return stored.replace(b"\n", b"\r\n")


def split_trace(stored):
    """Split a stored message into (trace headers, the client's message).

    The server prepends a Return-Path and a Received header (RFC 5321 4.4);
    everything after them must be exactly what the client sent (dot-unstuffed).
    `stored` is in its RFC 822 form (CRLF), as srv.messages() gives it.
    Returns the trace block (bytes, ending in CRLF) and the rest."""
    pos = 0
    fields = []
    while pos < len(stored):
        end = stored.find(b"\r\n", pos)
        assert end >= 0, "unterminated header line"
        line = stored[pos:end]
        if TRACE_FIELD.match(line):
            fields.append(line.split(b":", 1)[0].lower())
        elif line[:1] in (b" ", b"\t") and fields:
            pass  # folded continuation of a trace field
        else:
            break
        pos = end + 2
    return stored[:pos], stored[pos:], fields


def assert_delivered(stored, sent, mail_from):
    """The stored file is trace headers + exactly `sent`."""
    trace, rest, fields = split_trace(stored)
    assert fields[:1] == [b"return-path"], trace
    assert b"received" in fields, trace
    assert trace.startswith(b"Return-Path: <" + mail_from.encode() + b">\r\n"), trace
    assert rest == sent
    return trace


def smtp_dot_stuff(body):
    """What a client sends for `body` (CRLF lines) between DATA and the dot."""
    out = re.sub(rb"(^|\r\n)\.", rb"\1..", body)
    return out
