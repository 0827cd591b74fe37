/*
 * hop_count.c - Received: fields in the header section, counted on the fly.
 *
 * RFC 5321 6.3: "Simple counting of the number of Received: header fields
 * in a message has proven to be an effective, although rarely optimal,
 * method of detecting loops in mail systems." RFC 5322 2.2 (a field name is
 * printable ASCII up to the colon; folded lines start with WSP), 2.1 (the
 * header section ends at the first empty line), 4.5 (obsolete syntax: WSP
 * before the colon).
 *
 * A state machine over bytes: at the start of a line it matches "received"
 * case-insensitively, then optional SP/HT, then ':'. Anything else makes
 * the rest of the line uninteresting. An empty line (CRLF at the start of a
 * line) ends the header section for good.
 */
#include "core/hop_count.h"

#include <limits.h>

enum {
    ST_BOL,    /* at the start of a header line */
    ST_NAME,   /* matching "received" (h->match characters so far) */
    ST_WSP,    /* "received" then optional white space, waiting for ':' */
    ST_SKIP,   /* rest of an uninteresting line, until LF */
    ST_BOL_CR, /* CR at the start of a line: an empty line if LF follows */
    ST_BODY,   /* past the header section */
};

static const char NAME[] = "received";

void sk_hop_count_init(sk_hop_count *h)
{
    h->count = 0;
    h->state = ST_BOL;
    h->match = 0;
}

static int lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

void sk_hop_count_feed(sk_hop_count *h, const char *p, size_t n)
{
    for (size_t i = 0; i < n && h->state != ST_BODY; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (h->state) {
        case ST_BOL:
            if (c == '\r')
                h->state = ST_BOL_CR;
            else if (c == '\n')
                h->state = ST_BODY; /* a bare LF empty line also ends it */
            else if (lower(c) == NAME[0]) {
                h->match = 1;
                h->state = ST_NAME;
            } else
                h->state = ST_SKIP;
            break;
        case ST_BOL_CR:
            h->state = c == '\n' ? ST_BODY : ST_SKIP;
            break;
        case ST_NAME:
            if (lower(c) == NAME[h->match]) {
                if (++h->match == sizeof NAME - 1)
                    h->state = ST_WSP;
            } else
                h->state = c == '\n' ? ST_BOL : ST_SKIP;
            break;
        case ST_WSP:
            if (c == ':') {
                if (h->count < UINT_MAX)
                    h->count++;
                h->state = ST_SKIP;
            } else if (c == '\n')
                h->state = ST_BOL;
            else if (c != ' ' && c != '\t')
                h->state = ST_SKIP; /* "Received-SPF:", "ReceivedX:" */
            break;
        case ST_SKIP:
            if (c == '\n')
                h->state = ST_BOL;
            break;
        }
    }
}

int sk_hop_count_body_reached(const sk_hop_count *h)
{
    return h->state == ST_BODY;
}
