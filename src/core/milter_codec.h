/*
 * milter_codec.h - the Sendmail mail filter (milter) protocol, version 6,
 * as Sendmail's libmilter and Postfix speak it: packet framing, the MTA's
 * commands (SMFIC_*) and the filter's replies (SMFIR_*). Sans I/O: the
 * encoders append whole packets to a buffer, the decoder takes one packet
 * from contiguous bytes and checks every length in it.
 *
 * A packet is a 4-octet length in network order (the command octet plus
 * the data) followed by the command octet and the data. Strings in data
 * are NUL-terminated. The filter's replies are bounded here: a packet
 * longer than SK_MILTER_MAX_PACKET is an error, never a reason to buffer.
 */
#ifndef SMTPKIT_CORE_MILTER_CODEC_H
#define SMTPKIT_CORE_MILTER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "smtpkit/buf.h"

#define SK_MILTER_VERSION 6
/* One body chunk (libmilter's MILTER_CHUNK_SIZE); replies stay within
 * 64 KiB unless larger sizes are negotiated, which smtpkit never asks. */
#define SK_MILTER_CHUNK 65535u
#define SK_MILTER_MAX_PACKET (65535u + 1024u)

/* MTA -> filter */
#define SMFIC_ABORT 'A'
#define SMFIC_BODY 'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO 'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO 'H'
#define SMFIC_HEADER 'L'
#define SMFIC_MAIL 'M'
#define SMFIC_EOH 'N'
#define SMFIC_OPTNEG 'O'
#define SMFIC_QUIT 'Q'
#define SMFIC_RCPT 'R'
#define SMFIC_DATA 'T'

/* filter -> MTA */
#define SMFIR_ADDRCPT '+'
#define SMFIR_DELRCPT '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN '4'
#define SMFIR_ACCEPT 'a'
#define SMFIR_REPLBODY 'b'
#define SMFIR_CONTINUE 'c'
#define SMFIR_DISCARD 'd'
#define SMFIR_CHGFROM 'e'
#define SMFIR_CONN_FAIL 'f'
#define SMFIR_ADDHEADER 'h'
#define SMFIR_INSHEADER 'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER 'm'
#define SMFIR_PROGRESS 'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT 'r'
#define SMFIR_SKIP 's'
#define SMFIR_TEMPFAIL 't'
#define SMFIR_REPLYCODE 'y'

/* actions the filter may take (SMFIF_*) */
#define SMFIF_ADDHDRS 0x01u
#define SMFIF_CHGBODY 0x02u
#define SMFIF_ADDRCPT 0x04u
#define SMFIF_DELRCPT 0x08u
#define SMFIF_CHGHDRS 0x10u
#define SMFIF_QUARANTINE 0x20u
#define SMFIF_CHGFROM 0x40u
#define SMFIF_ADDRCPT_PAR 0x80u
#define SMFIF_SETSYMLIST 0x100u

/* protocol steps (SMFIP_*) */
#define SMFIP_NOCONNECT 0x01u
#define SMFIP_NOHELO 0x02u
#define SMFIP_NOMAIL 0x04u
#define SMFIP_NORCPT 0x08u
#define SMFIP_NOBODY 0x10u
#define SMFIP_NOHDRS 0x20u
#define SMFIP_NOEOH 0x40u
#define SMFIP_NR_HDR 0x80u
#define SMFIP_NOUNKNOWN 0x100u
#define SMFIP_NODATA 0x200u
#define SMFIP_SKIP 0x400u
#define SMFIP_RCPT_REJ 0x800u
#define SMFIP_NR_CONN 0x1000u
#define SMFIP_NR_HELO 0x2000u
#define SMFIP_NR_MAIL 0x4000u
#define SMFIP_NR_RCPT 0x8000u
#define SMFIP_NR_DATA 0x10000u
#define SMFIP_NR_UNKN 0x20000u
#define SMFIP_NR_EOH 0x40000u
#define SMFIP_NR_BODY 0x80000u
#define SMFIP_HDR_LEADSPC 0x100000u

/* What smtpkit offers: the actions it carries out (header changes, body
 * replacement, quarantine; not recipient or sender changes) and the steps
 * a filter may skip or leave unanswered. */
#define SK_MILTER_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_CHGHDRS | SMFIF_QUARANTINE)
#define SK_MILTER_STEPS                                                                            \
    (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS |  \
     SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | SMFIP_NR_CONN |    \
     SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_EOH | SMFIP_NR_BODY)

/* ---- encoders: each appends one (or, for a body, several) whole
 * packets; 0 on success, -1 when out is full or an argument too long ---- */

int sk_milter_enc_packet(sk_buf *out, char cmd, const void *data, size_t len);
int sk_milter_enc_optneg(sk_buf *out, uint32_t version, uint32_t actions, uint32_t steps);
/* family: '4', '6', 'L' (Unix socket) or 'U' (unknown: no port or address) */
int sk_milter_enc_connect(sk_buf *out, const char *hostname, char family, unsigned port,
                          const char *addr);
int sk_milter_enc_helo(sk_buf *out, const char *helo);
/* MAIL and RCPT: the path in angle brackets, then ESMTP arguments */
int sk_milter_enc_args(sk_buf *out, char cmd, const char *const *args, size_t nargs);
int sk_milter_enc_header(sk_buf *out, const char *name, const char *value);
/* The body in chunks of at most SK_MILTER_CHUNK octets. */
int sk_milter_enc_body(sk_buf *out, const char *p, size_t n);
/* Macros for the command `for` (SMFIC_CONNECT, ...): names and values. */
int sk_milter_enc_macros(sk_buf *out, char for_cmd, const char *const *names,
                         const char *const *values, size_t n);

/* ---- decoder ---- */

typedef enum sk_milter_status {
    SK_MILTER_MORE = 0,  /* not a whole packet yet; *need says how many octets */
    SK_MILTER_PACKET,    /* one reply decoded; *used octets consumed */
    SK_MILTER_ERROR = -1 /* malformed: sk_milter_reply.error says why */
} sk_milter_status;

typedef struct sk_milter_reply {
    char cmd;
    const char *error; /* on SK_MILTER_ERROR */
    /* OPTNEG */
    uint32_t version, actions, steps;
    /* INSHEADER, CHGHEADER: index; ADDHEADER, INSHEADER, CHGHEADER: name
     * and value (NUL-terminated inside the input) */
    uint32_t index;
    const char *name;
    const char *value;
    /* REPLYCODE: the reply line(s); QUARANTINE: the reason (NUL-terminated) */
    const char *text;
    /* REPLBODY: this packet's bytes */
    const char *data;
    size_t len;
} sk_milter_reply;

/* Decode one reply packet from p[0..n). Fields point into p. */
sk_milter_status sk_milter_decode(const char *p, size_t n, size_t *used, size_t *need,
                                  sk_milter_reply *r);

/* A REPLYCODE's text, checked: "DDD[ -]x.y.z text" or "DDD text" with
 * the first digit 4 or 5 (and equal to the enhanced code's class). Fills
 * code, enhanced ("" when none) and the first line's text (control octets
 * become '?'). 0 when valid, -1 otherwise. */
int sk_milter_parse_replycode(const char *s, int *code, char enhanced[16], char *text,
                              size_t textcap);

#endif
