/*
 * username_format.c - Dovecot's auth_username_format for the names AUTH
 * looks up (RFC 4954 section 4): %u, %n, %d with the L and U modifiers,
 * %% and literal text. See username_format.h.
 */
#include "server/username_format.h"

#include <ctype.h>
#include <string.h>

/* One directive at fmt[0] == '%': its length, and the variable and case. */
static int directive(const char *f, char *var, char *mod)
{
    size_t i = 1;
    *mod = 0;
    if (f[i] == 'L' || f[i] == 'U')
        *mod = f[i++];
    if (f[i] != 'u' && f[i] != 'n' && f[i] != 'd' && !(f[i] == '%' && !*mod))
        return -1;
    *var = f[i];
    return (int)i + 1;
}

const char *sk_username_format_check(const char *fmt)
{
    if (!fmt || !*fmt)
        return "empty auth_username_format";
    int any = 0;
    for (const char *p = fmt; *p;) {
        if ((unsigned char)*p < 0x21 || *p == 0x7f || *p == ':')
            return "auth_username_format holds a space, ':' or control character";
        if (*p != '%') {
            p++;
            continue;
        }
        char var, mod;
        int n = directive(p, &var, &mod);
        if (n < 0)
            return "auth_username_format: use %u, %n, %d (optionally %Lu, %Ln, %Ld, %Uu...) "
                   "and %%";
        any |= var != '%';
        p += n;
    }
    return any ? NULL : "auth_username_format names no part of the user (%u, %n or %d)";
}

static int put(char *out, size_t outlen, size_t *o, const char *s, size_t n, char mod)
{
    if (*o + n >= outlen)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[(*o)++] = (char)(mod == 'L' ? tolower(c) : mod == 'U' ? toupper(c) : c);
    }
    out[*o] = '\0';
    return 0;
}

int sk_username_format(const char *fmt, const char *user, char *out, size_t outlen)
{
    if (!fmt)
        fmt = "%u";
    if (!user || outlen == 0 || sk_username_format_check(fmt))
        return -1;
    size_t o = 0;
    out[0] = '\0';
    const char *at = strchr(user, '@');
    size_t ul = strlen(user), nl = at ? (size_t)(at - user) : ul;
    for (const char *p = fmt; *p;) {
        if (*p != '%') {
            if (put(out, outlen, &o, p, 1, 0) < 0)
                return -1;
            p++;
            continue;
        }
        char var, mod;
        int n = directive(p, &var, &mod);
        int r = 0;
        if (var == 'u')
            r = put(out, outlen, &o, user, ul, mod);
        else if (var == 'n')
            r = put(out, outlen, &o, user, nl, mod);
        else if (var == 'd')
            r = at ? put(out, outlen, &o, at + 1, strlen(at + 1), mod) : 0;
        else
            r = put(out, outlen, &o, "%", 1, 0);
        if (r < 0)
            return -1;
        p += n;
    }
    return 0;
}
