/*
 * control_line.h - the one-line protocol of the queue control socket
 * (<relay_queue>/control, server/queue_control.c), spoken by
 * `smtpkit queue` to a running server. No RFC: a local protocol, kept
 * small and strict because anyone who can reach the socket may send it
 * anything.
 *
 * One request per connection, one line, LF or CRLF ended, at most
 * SK_CONTROL_LINE_MAX octets with its line end:
 *
 *     FLUSH              try every queued message now
 *     FLUSH <id>         try that message now
 *     FLUSH <domain>     try every message with a recipient there now
 *     KICK <id>          re-read the record of <id> (changed on disk)
 *     BOUNCE <id>        give up on <id>: bounce what is not delivered
 *
 * Verbs are case-insensitive; one space between verb and argument. An id
 * is what sk_queue_id_valid() accepts; a domain is a dotted name (it has
 * at least one dot, so it is never an id) or an address literal in [].
 * The answer is one line: "OK text" or "ERR text", then the server closes.
 */
#ifndef SMTPKIT_QUEUE_CONTROL_LINE_H
#define SMTPKIT_QUEUE_CONTROL_LINE_H

#include <stddef.h>

#define SK_CONTROL_LINE_MAX 512 /* octets of a request, line end included */
#define SK_CONTROL_ARG_MAX 256  /* octets of its argument, plus the NUL */

typedef enum sk_control_verb {
    SK_CONTROL_FLUSH,
    SK_CONTROL_KICK,
    SK_CONTROL_BOUNCE,
} sk_control_verb;

typedef struct sk_control_cmd {
    sk_control_verb verb;
    char arg[SK_CONTROL_ARG_MAX]; /* "" for FLUSH without an argument */
} sk_control_cmd;

/* Parse one request of len octets (a trailing LF or CRLF is allowed, any
 * other control byte or a NUL is not). 0, or -1 with the reason in err
 * ("unknown command", "line too long", "malformed queue id"...). */
int sk_control_parse(const char *line, size_t len, sk_control_cmd *out, char *err, size_t errlen);

/* The request line for c, LF ended, into out. Its length, or -1 when c
 * would not parse back (bad argument) or does not fit. */
int sk_control_format(const sk_control_cmd *c, char *out, size_t cap);

/* 1 if s is a domain as FLUSH takes it (see above). */
int sk_control_domain_valid(const char *s);

const char *sk_control_verb_name(sk_control_verb v);

/* Parse an answer line (line end allowed): 1 for OK, 0 for ERR, -1 when
 * it is neither; *text points at the text after the word (may be ""),
 * *textlen its length without the line end. */
int sk_control_reply_parse(const char *line, size_t len, const char **text, size_t *textlen);

#endif
