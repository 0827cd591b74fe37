/*
 * text_mask.h - values a client chose, made safe for key=value log lines:
 * no control byte, no quote or backslash, so no value can end a line, add
 * a field or break out of a quoted one. Shared by the session core and the
 * server shell.
 */
#ifndef SMTPKIT_UTIL_TEXT_MASK_H
#define SMTPKIT_UTIL_TEXT_MASK_H

#include <stddef.h>

/* One token: bytes below 0x21, DEL, '"' and '\' become '?'. Copies at most
 * n - 1 bytes of src (NULL: "") into dst; returns dst ("" when n is 0). */
const char *sk_text_token(const char *src, char *dst, size_t n);
/* The same for a quoted value: spaces are kept. */
const char *sk_text_quoted(const char *src, char *dst, size_t n);

#endif
