/*
 * message_id.h - the one identifier of an accepted message: the same string
 * in the 250 reply, every log line about the message, the Received header's
 * "id" clause (RFC 5321 4.4), the Maildir file names and the outbound queue
 * file names (docs/STORE.md, "The message id").
 */
#ifndef SMTPKIT_STORE_MESSAGE_ID_H
#define SMTPKIT_STORE_MESSAGE_ID_H

#include <stddef.h>

/* 20 characters of 0-9A-V (base32hex, upper case), fixed width:
 *   7  seconds since the epoch (until the year 3058)
 *   4  microseconds
 *   5  process id
 *   4  a process-wide counter (atomic), modulo 2^20
 * so ids sort by arrival time as strings, never repeat across threads,
 * processes or restarts (a restart takes more than a microsecond), and are
 * an RFC 5321 Atom, safe in a file name and in a log line. */
#define SK_MESSAGE_ID_LEN 20

/* Write a fresh id and its NUL into out (cap > SK_MESSAGE_ID_LEN). 0, or -1
 * if cap is too small. Thread-safe. */
int sk_message_id_make(char *out, size_t cap);

/* 1 if s is SK_MESSAGE_ID_LEN characters of the id alphabet. */
int sk_message_id_valid(const char *s);

#endif
