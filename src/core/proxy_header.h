/*
 * proxy_header.h - the PROXY protocol header a load balancer (HAProxy and
 * others) sends before the client's first byte, so the server learns the
 * client's address: version 1 (one text line) and version 2 (binary), as
 * HAProxy's proxy-protocol.txt defines them (sections 2.1 and 2.2).
 *
 * Sans I/O and resumable: bytes in, any split; the parser consumes only the
 * bytes of the header, never one past it, so what follows (the client's
 * ClientHello, say) stays for the caller. sk_proxy_want() says how many
 * bytes the caller may read without overrunning a valid header, so a shell
 * can recv() exactly that much and never has to peek or push bytes back.
 * It keeps no more than a v1 line (107 octets) and a v2 address block;
 * v2 TLVs are walked (each must fit in the announced length) and skipped.
 */
#ifndef SMTPKIT_CORE_PROXY_HEADER_H
#define SMTPKIT_CORE_PROXY_HEADER_H

#include <stddef.h>

#define SK_PROXY_V1_MAX 107 /* a v1 line, CRLF included (2.1) */
#define SK_PROXY_V2_HEAD 16 /* signature, version/command, family, length */

typedef enum sk_proxy_status {
    SK_PROXY_MORE,  /* everything given was header: feed more */
    SK_PROXY_DONE,  /* header complete; *consumed says where it ended */
    SK_PROXY_ERROR, /* not a header, or a malformed one: sk_proxy_error() */
} sk_proxy_status;

typedef struct sk_proxy_info {
    int version; /* 1 or 2 */
    /* 1 when the header carries no client address to use: v2 LOCAL (a
     * health check of the proxy itself), v1 UNKNOWN, v2 AF_UNSPEC or
     * AF_UNIX; the caller then keeps the connection's own addresses. */
    int local;
    int family;                     /* AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX */
    int transport;                  /* v2: 0 unspecified, 1 stream, 2 datagram; v1: 1 */
    unsigned char src[16], dst[16]; /* network order, 4 or 16 octets used */
    unsigned src_port, dst_port;
    unsigned ntlv;      /* v2 TLVs skipped */
    size_t header_size; /* octets of the whole header */
} sk_proxy_info;

typedef struct sk_proxy_parser {
    int state;
    int missing;       /* the error is that the bytes are no PROXY header at all */
    const char *error; /* static text, set with SK_PROXY_ERROR */
    size_t have;       /* header octets consumed so far */
    size_t total;      /* v2: 16 + announced length */
    size_t addr_len;   /* v2: octets of the address block to keep */
    unsigned char buf[SK_PROXY_V1_MAX + 1 > 16 + 216 ? SK_PROXY_V1_MAX + 1 : 16 + 216];
    unsigned char tlv_head[3]; /* v2 TLV type and length being read */
    size_t tlv_head_have;
    size_t tlv_left; /* value octets of the current TLV still to skip */
    sk_proxy_info info;
} sk_proxy_parser;

void sk_proxy_init(sk_proxy_parser *p);

/* Feed len octets. *consumed is how many belonged to the header (with
 * SK_PROXY_DONE the rest is the client's; with MORE it is len). After DONE
 * or ERROR further calls return the same status and consume nothing. */
sk_proxy_status sk_proxy_feed(sk_proxy_parser *p, const void *data, size_t len, size_t *consumed);

/* With SK_PROXY_MORE: how many more octets a valid header certainly still
 * has (at least 1). 0 after DONE or ERROR. */
size_t sk_proxy_want(const sk_proxy_parser *p);

/* The result after SK_PROXY_DONE, else NULL. */
const sk_proxy_info *sk_proxy_result(const sk_proxy_parser *p);

/* Why the header was refused (static text), or NULL. */
const char *sk_proxy_error(const sk_proxy_parser *p);

/* 1 when the refused bytes did not even start like a PROXY header (a
 * client talking to the port directly, not through the proxy). */
int sk_proxy_error_is_missing(const sk_proxy_parser *p);

#endif
