/*
 * sasl.h - server side of the SMTP AUTH exchange (RFC 4954) for the PLAIN
 * (RFC 4616) and LOGIN (draft-murchison-sasl-login) mechanisms, with a
 * strict base64 codec (RFC 4648 4: canonical, padded, no whitespace).
 *
 * The decoder only turns client lines into (user, password); checking them
 * is the caller's business. Secrets are wiped with explicit_bzero.
 */
#ifndef SMTPKIT_SASL_H
#define SMTPKIT_SASL_H

#include <stddef.h>
#include <sys/types.h>

/* RFC 4954 4: an AUTH command line or response line may be 12288 octets
 * including CRLF. */
#define SK_SASL_LINE_MAX 12288
/* RFC 4616 2: authzid, authcid and passwd are at most 255 octets each. */
#define SK_SASL_FIELD_MAX 255

typedef enum sk_sasl_mech {
    SK_SASL_NONE = 0,
    SK_SASL_PLAIN,
    SK_SASL_LOGIN,
} sk_sasl_mech;

typedef enum sk_sasl_status {
    SK_SASL_CONTINUE, /* send "334 <challenge>" and read the next line */
    SK_SASL_DONE,     /* user and password are ready */
    SK_SASL_CANCEL,   /* the client sent "*" (RFC 4954 4): 501 */
    SK_SASL_BAD_B64,  /* not strict base64: 501 5.5.2 */
    SK_SASL_BAD_MSG,  /* decoded, but not a valid message of the mechanism */
    SK_SASL_AUTHZ,    /* PLAIN asked to act as another identity: refused (535) */
} sk_sasl_status;

typedef struct sk_sasl {
    sk_sasl_mech mech;
    int step;
    char user[SK_SASL_FIELD_MAX + 1];
    char pass[SK_SASL_FIELD_MAX + 1];
} sk_sasl;

/* "PLAIN" / "LOGIN" in any case; SK_SASL_NONE otherwise. */
sk_sasl_mech sk_sasl_mech_lookup(const char *name, size_t len);
const char *sk_sasl_mech_name(sk_sasl_mech m);

/*
 * Begin an exchange. `initial` is the AUTH command's initial response
 * (base64, or "=" for an empty one), NULL when none was given. On
 * SK_SASL_CONTINUE *challenge is the base64 text for the 334 reply.
 */
sk_sasl_status sk_sasl_start(sk_sasl *x, sk_sasl_mech mech, const char *initial, size_t len,
                             const char **challenge);
/* Feed one client response line (without CRLF). */
sk_sasl_status sk_sasl_step(sk_sasl *x, const char *line, size_t len, const char **challenge);
/* Wipe user and password and forget the exchange. */
void sk_sasl_clear(sk_sasl *x);

/* Strict base64 decode of in[0..len) into out (at most outmax bytes).
 * Returns the decoded length, or -1 if the input is not canonical padded
 * base64 or does not fit. */
ssize_t sk_sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outmax);
/* Base64 encode; out needs 4 * ceil(len / 3) + 1 bytes. Returns the length
 * written (without the NUL), or 0 if outmax is too small. */
size_t sk_sasl_b64_encode(const unsigned char *in, size_t len, char *out, size_t outmax);

#endif
