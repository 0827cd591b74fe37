/*
 * username_format.h - the user name AUTH looks up, made from the one the
 * client gave (RFC 4954 section 4, the authentication identity) as
 * Dovecot's auth_username_format does: a template of literal text and
 *
 *     %u  the whole name        %n  the part before '@' (all without '@')
 *     %d  the part after '@'    %%  a '%'
 *
 * each optionally lowercased with L ("%Lu", "%Ln", "%Ld") or uppercased
 * with U. The default "%u" leaves the name as given (exact match).
 */
#ifndef SMTPKIT_SERVER_USERNAME_FORMAT_H
#define SMTPKIT_SERVER_USERNAME_FORMAT_H

#include <stddef.h>

/* NULL when fmt is a valid template, else a static reason. */
const char *sk_username_format_check(const char *fmt);

/* Expand fmt for user into out (NUL-terminated). 0, or -1 when fmt is
 * invalid or the result does not fit in outlen. fmt NULL means "%u". */
int sk_username_format(const char *fmt, const char *user, char *out, size_t outlen);

#endif
