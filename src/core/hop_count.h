/*
 * hop_count.h - counts the Received: header fields of a message while its
 * data streams past (RFC 5321 6.3 loop detection, RFC 5322 2.2 and 3.6.7).
 *
 * The counter is resumable and holds no message bytes: feed it the message
 * as the data framer emits it (dot-unstuffed, CRLF line ends), in chunks of
 * any size, and it counts the fields named "Received" (any case, optional
 * white space before the colon as RFC 5322 4.5 obs-optional allows) that
 * start a line of the header section. The header section ends at the first
 * empty line; nothing after it is looked at, so a "Received:" line in a
 * body or in an attached message never counts. Folded continuation lines
 * (starting with SP or HT) belong to the field before them.
 */
#ifndef SMTPKIT_CORE_HOP_COUNT_H
#define SMTPKIT_CORE_HOP_COUNT_H

#include <stddef.h>

typedef struct sk_hop_count {
    unsigned count; /* Received: fields seen so far (saturates at UINT_MAX) */
    int state;      /* private */
    unsigned match; /* private: characters of "received" matched */
} sk_hop_count;

void sk_hop_count_init(sk_hop_count *h);
/* Consume n bytes of message data. */
void sk_hop_count_feed(sk_hop_count *h, const char *p, size_t n);
/* 1 once the empty line that ends the header section has been seen. */
int sk_hop_count_body_reached(const sk_hop_count *h);

#endif
