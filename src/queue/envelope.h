/*
 * envelope.h - the envelope record of a message in the outbound queue: who
 * it is from, who it is for, and where each recipient stands (RFC 5321 6.1:
 * a server that said 250 keeps the message until it is delivered or the
 * failure reported; RFC 3461 ENVID, RET, ORCPT and NOTIFY, kept for the
 * delivery status notifications of RFC 3464).
 *
 * The record is a small line-based text file, one per message, in the
 * queue's env/ directory (queue_dir.h). docs/STORE.md shows the format:
 *
 *     smtpkit-envelope 1
 *     id 0QJ2K5O1A3B4C00E1F00
 *     arrival 1764670000
 *     size 1234
 *     sender alice@example.test
 *     envid -
 *     ret -
 *     body 8bitmime
 *     smtputf8 0
 *     warned 1               (optional: a delay warning was sent)
 *     rcpt bob@example.net - - pending 0 1764670000 0 - - -
 *     end
 *
 * Every value is one token: "-" when empty; '%', bytes outside 0x21-0x7e
 * and a lone "-" are written %XX, so no address or reply text can break a
 * line or a field. A rcpt line holds: address, ORCPT, NOTIFY, state,
 * attempts, next attempt (Unix seconds), then the last reply: code (0 when
 * none), enhanced code, the host that gave it, text.
 *
 * The parser is strict: the version line, each field once and in order,
 * at least one recipient, "end" as the last line; anything else (a
 * truncated or corrupt file) is an error saying which line, never a
 * half-filled record.
 */
#ifndef SMTPKIT_QUEUE_ENVELOPE_H
#define SMTPKIT_QUEUE_ENVELOPE_H

#include <stddef.h>

#include "smtpkit/buf.h"

#define SK_ENVELOPE_VERSION 1
#define SK_ENVELOPE_MAX_RCPTS 100000     /* recipients in one record */
#define SK_ENVELOPE_MAX_VALUE 4096       /* octets of one decoded value */
#define SK_ENVELOPE_MAX_FILE (64u << 20) /* octets of one record file */

typedef enum sk_body_type {
    SK_BODY_7BIT = 0,
    SK_BODY_8BITMIME,   /* RFC 6152 */
    SK_BODY_BINARYMIME, /* RFC 3030 */
} sk_body_type;

/* Where one recipient stands. */
typedef enum sk_envelope_state {
    SK_ENV_PENDING = 0, /* not tried yet */
    SK_ENV_SENT,        /* a 2xx from the next hop: done */
    SK_ENV_DEFERRED,    /* a 4xx or no answer: try again at next_attempt */
    SK_ENV_BOUNCED,     /* a 5xx or too old: reported to the sender, done */
    SK_ENV_HELD,        /* held by the operator: not tried until released */
} sk_envelope_state;

/* The last reply given for a recipient (code 0: none yet). */
typedef struct sk_envelope_reply {
    int code;       /* 0, or 200-599 */
    char *enhanced; /* "4.2.0" or "" */
    char *host;     /* who answered, e.g. "mx.example.net[192.0.2.1]", or "" */
    char *text;     /* the reply text, or a local reason, or "" */
} sk_envelope_reply;

typedef struct sk_envelope_rcpt {
    char *addr;   /* the mailbox to deliver to, without <> */
    char *orcpt;  /* RFC 3461 ORCPT as given ("rfc822;bob@example.net"), or "" */
    char *notify; /* RFC 3461 NOTIFY as given ("SUCCESS,DELAY"), or "" */
    sk_envelope_state state;
    unsigned attempts;
    long long next_attempt; /* Unix seconds */
    sk_envelope_reply last;
} sk_envelope_rcpt;

typedef struct sk_envelope {
    char id[32];             /* the message id (file name in msg/ and env/) */
    long long arrival;       /* Unix seconds */
    unsigned long long size; /* the RFC 822 size: octets with CRLF line ends,
                                what SIZE= declares; the message file itself
                                has LF line ends (docs/STORE.md) */
    char *sender;            /* reverse-path without <>, "" for the null sender */
    char *envid;             /* RFC 3461 ENVID, or "" */
    char *ret;               /* RFC 3461 RET: "FULL", "HDRS" or "" */
    sk_body_type body;
    int smtputf8; /* RFC 6531 */
    int warned;   /* a delay warning went to the sender (RFC 3464 action
                     "delayed"): the optional line "warned 1" */
    sk_envelope_rcpt *rcpts;
    size_t nrcpts;
} sk_envelope;

/* An empty record (all strings ""). */
void sk_envelope_init(sk_envelope *e);
/* Free what the record holds and make it empty again. */
void sk_envelope_clear(sk_envelope *e);
/* Replace *field (one of the record's strings) with a copy of value (NULL
 * means ""). 0, or -1 out of memory or over SK_ENVELOPE_MAX_VALUE. */
int sk_envelope_set(char **field, const char *value);
/* Add a pending recipient (orcpt and notify may be NULL). 0 or -1. */
int sk_envelope_add_rcpt(sk_envelope *e, const char *addr, const char *orcpt, const char *notify,
                         long long next_attempt);

const char *sk_envelope_state_name(sk_envelope_state s);
const char *sk_body_type_name(sk_body_type b);

/* Append the text form to out. 0, or -1 (out of memory, or a record the
 * parser would refuse: no recipient, a bad id, state or code). */
int sk_envelope_format(const sk_envelope *e, sk_buf *out);
/* Parse len bytes into out (initialised here; on error left empty). 0, or
 * -1 with "line N: why" in err. */
int sk_envelope_parse(const char *data, size_t len, sk_envelope *out, char *err, size_t errlen);

/* Read and parse dirfd/name. 0, or -1 with errno (ENOENT: no such record;
 * EINVAL: not a valid record, err says why). */
int sk_envelope_load(int dirfd, const char *name, sk_envelope *out, char *err, size_t errlen);
/* Write e durably as dirfd/name, replacing any record there atomically: the
 * text goes to a fresh file in tmpfd (same filesystem), is fsynced and
 * renamed over name; then, when sync_dir, dirfd is fsynced so the new name
 * survives a crash. A reader sees the old record or the new one, never a
 * mix. 0, or -1 with errno (nothing changed at name). */
int sk_envelope_save(int dirfd, const char *name, int tmpfd, const sk_envelope *e, int sync_dir);

#endif
