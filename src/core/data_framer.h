/*
 * data_framer.h - resumable byte-level framer for message data (RFC 5321
 * 4.1.1.4, 4.5.2, 2.3.8; RFC 3030 for BDAT chunks).
 *
 * DATA mode: removes dot-stuffing and finds the end of data, which is ONLY
 * <CRLF>.<CRLF> (the CRLF of the DATA command counts as the first CRLF, so
 * "." on the first line ends an empty message). BDAT mode: raw bytes, the
 * caller counts them. In both modes a bare LF or bare CR is recorded in
 * `seen`, never ends anything, and is emitted as CRLF (what the
 * "normalise" policy stores; under the "reject" policy the caller discards
 * the data).
 *
 * Output goes to a sink in chunks of at most SK_FRAMER_CHUNK bytes; the
 * framer holds no message bytes between calls, only a few bits of state,
 * so any split of the input produces the same output.
 */
#ifndef SMTPKIT_CORE_DATA_FRAMER_H
#define SMTPKIT_CORE_DATA_FRAMER_H

#include <stddef.h>

#define SK_FRAMER_CHUNK 4096

typedef enum sk_framer_mode {
    SK_FRAMER_DOTS, /* DATA: dot-unstuffing, ends at CRLF.CRLF */
    SK_FRAMER_RAW,  /* BDAT: no stuffing, the length ends each chunk */
} sk_framer_mode;

/* Bits of sk_data_framer.seen */
#define SK_FRAMER_SEEN_BARE_LF 0x1
#define SK_FRAMER_SEEN_BARE_CR 0x2

typedef void (*sk_framer_sink)(void *arg, const char *p, size_t n);

typedef struct sk_data_framer {
    sk_framer_mode mode;
    int state;     /* private */
    unsigned seen; /* SK_FRAMER_SEEN_* */
    sk_framer_sink sink;
    void *arg;
    size_t outlen;
    char out[SK_FRAMER_CHUNK];
} sk_data_framer;

void sk_data_framer_init(sk_data_framer *f, sk_framer_mode mode, sk_framer_sink sink, void *arg);

/* Consume input. Returns the bytes consumed: all n, or in DOTS mode fewer
 * when the end of data was reached (the end marker is consumed, *done is
 * set to 1 and the bytes after it are left to the caller). Every byte
 * emitted so far has been passed to the sink when this returns. */
size_t sk_data_framer_feed(sk_data_framer *f, const char *p, size_t n, int *done);

/* BDAT mode, end of the message: a CR still pending at the end is bare. */
void sk_data_framer_finish(sk_data_framer *f);

#endif
