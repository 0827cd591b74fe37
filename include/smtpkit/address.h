/*
 * address.h - SMTP envelope address parser (RFC 5321 4.1.2, 4.1.3, 4.5.3.1;
 * RFC 6531 3.3 for SMTPUTF8).
 *
 * Parses a Path ("<local@domain>", with an optional source route
 * "<@a,@b:local@domain>" that is accepted and ignored, RFC 5321 4.1.1.3 and
 * appendix C), the null reverse-path "<>", and a bare Mailbox. Local parts
 * are dot-strings or quoted strings; domains are names or address literals
 * ([192.0.2.1], [IPv6:2001:db8::1]). UTF-8 is accepted, strictly validated,
 * only when the caller says SMTPUTF8 is in effect.
 */
#ifndef SMTPKIT_ADDRESS_H
#define SMTPKIT_ADDRESS_H

#include <stddef.h>

/* RFC 5321 4.5.3.1.1-4.5.3.1.3 (octets). The path limit counts the angle
 * brackets and any source route. */
#define SK_ADDR_LOCAL_MAX 64
#define SK_ADDR_DOMAIN_MAX 255
#define SK_ADDR_PATH_MAX 256

/* Parser flags. */
#define SK_ADDR_ALLOW_NULL 0x1 /* reverse-path: "<>" is valid */
#define SK_ADDR_UTF8 0x2       /* SMTPUTF8 in effect: UTF-8 allowed (validated) */
#define SK_ADDR_POSTMASTER 0x4 /* forward-path: bare "<postmaster>" is valid (4.5.1) */

typedef enum sk_addr_status {
    SK_ADDR_OK = 0,
    SK_ADDR_E_SYNTAX,     /* not a valid path/mailbox; the message says where */
    SK_ADDR_E_TOO_LONG,   /* local part, domain or path over its limit */
    SK_ADDR_E_NEEDS_UTF8, /* well-formed UTF-8, but SMTPUTF8 is not in effect */
} sk_addr_status;

typedef struct sk_address {
    int null_path;    /* "<>" */
    int postmaster;   /* bare "<postmaster>": mailbox holds "postmaster" */
    int utf8;         /* contains non-ASCII (only possible with SK_ADDR_UTF8) */
    int quoted_local; /* local part is a quoted string */
    int literal;      /* domain is an address literal */
    /* "local@domain" exactly as written, without brackets or source route;
     * "" for the null path. */
    char mailbox[SK_ADDR_PATH_MAX + 1];
    size_t local_len;  /* mailbox[0 .. local_len) is the local part */
    size_t domain_off; /* mailbox + domain_off is the domain (NUL-terminated) */
} sk_address;

/*
 * Parse a Path starting at s[0] == '<'. On success returns SK_ADDR_OK and
 * sets *consumed to the number of bytes up to and including the closing '>'
 * (the caller checks what follows). Otherwise returns the status with *err
 * set to a static message such as "local part longer than 64 octets".
 */
sk_addr_status sk_path_parse(const char *s, size_t len, unsigned flags, sk_address *out,
                             size_t *consumed, const char **err);

/* Parse exactly one Mailbox (no brackets) filling the whole s[0..len). */
sk_addr_status sk_mailbox_parse(const char *s, size_t len, unsigned flags, sk_address *out,
                                const char **err);

/* 1 if s[0..len) is a Domain (RFC 5321 4.1.2; U-labels when utf8), else 0. */
int sk_domain_valid(const char *s, size_t len, int utf8);
/* 1 if s[0..len) is an address literal including the brackets, else 0. */
int sk_address_literal_valid(const char *s, size_t len);
/* Length (2..4) of the well-formed UTF-8 sequence at p, or 0 (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t sk_utf8_seq_len(const unsigned char *p, size_t n);
/* 1 if all of s[0..len) is well-formed UTF-8 (ASCII included). */
int sk_utf8_valid(const char *s, size_t len);

#endif
