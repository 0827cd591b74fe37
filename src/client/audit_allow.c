/*
 * audit_allow.c - which replies a step of an audit check admits: the codes
 * the reply registry lists for the command (RFC 5321 4.3.2 and the
 * extension RFCs, src/core/reply_registry.c), narrowed by the check's own
 * list ("503 554", "5xx", "-503").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/audit.h"
#include "smtpkit/registry.h"

/* Walk the space-separated tokens of `allow`: does `code` match a positive
 * token (*pos counts them), or an exclusion? */
static void scan(const char *allow, int code, int *npos, int *match, int *excluded)
{
    *npos = *match = *excluded = 0;
    if (!allow)
        return;
    const char *p = allow;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, " ");
        int neg = p[0] == '-';
        const char *t = neg ? p + 1 : p;
        size_t tn = neg ? n - 1 : n;
        int hit = 0;
        if (tn == 3 && t[0] >= '1' && t[0] <= '9') {
            if (t[1] == 'x' && t[2] == 'x')
                hit = code / 100 == t[0] - '0';
            else
                hit = code == atoi(t) && t[1] >= '0' && t[1] <= '9';
        }
        if (neg) {
            if (hit)
                *excluded = 1;
        } else {
            (*npos)++;
            if (hit)
                *match = 1;
        }
        p += n;
    }
}

/* Does `allow` hold the token "*" (no registry narrowing)? */
static int any_code(const char *allow)
{
    for (const char *p = allow; p && *p; p++)
        if (*p == '*' && (p == allow || p[-1] == ' ') && (p[1] == ' ' || p[1] == '\0'))
            return 1;
    return 0;
}

int sk_audit_allows(const char *allow, const char *cmd, int code)
{
    if (!cmd || (!any_code(allow) && !sk_registry_allows(code, cmd)))
        return 0;
    int npos, match, excluded;
    scan(allow, code, &npos, &match, &excluded);
    if (excluded)
        return 0;
    return npos == 0 || match;
}

void sk_audit_allowed_text(const char *allow, const char *cmd, char *out, size_t outlen)
{
    int codes[64];
    size_t n = 0;
    if (!outlen)
        return;
    out[0] = '\0';
    if (any_code(allow)) {
        /* judged by the tokens alone: say them ("any 4xx or 5xx reply") */
        size_t used = 0, k = 0;
        for (const char *p = allow; *p && used + 1 < outlen;) {
            while (*p == ' ')
                p++;
            size_t tl = strcspn(p, " ");
            if (tl && !(tl == 1 && *p == '*')) {
                int w = snprintf(out + used, outlen - used, "%s%.*s", k++ ? " or " : "any ",
                                 (int)tl, p);
                if (w < 0)
                    break;
                used += (size_t)w;
                if (used >= outlen)
                    used = outlen - 1;
            }
            p += tl;
        }
        if (used + 7 < outlen)
            snprintf(out + used, outlen - used, " reply");
        return;
    }
    for (size_t i = 0; i < sk_registry_size() && n < 64; i++) {
        const sk_code_entry *e = sk_registry_entry(i);
        if (!sk_audit_allows(allow, cmd, e->code))
            continue;
        int dup = 0;
        for (size_t k = 0; k < n; k++)
            dup |= codes[k] == e->code;
        if (!dup)
            codes[n++] = e->code;
    }
    size_t used = 0;
    for (size_t i = 0; i < n && used + 1 < outlen; i++) {
        int w = snprintf(out + used, outlen - used, "%s%d",
                         i == 0 ? "" : (i + 1 == n ? " or " : ", "), codes[i]);
        if (w < 0)
            break;
        used += (size_t)w;
        if (used >= outlen)
            used = outlen - 1;
    }
}

int sk_audit_allow_unlisted(const char *allow, const char *cmd, int *bad)
{
    int count = 0;
    if (!allow)
        return 0;
    const char *p = allow;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, " ");
        if (n == 3 && p[1] != 'x') {
            int code = atoi(p);
            if (!sk_registry_allows(code, cmd)) {
                if (!count && bad)
                    *bad = code;
                count++;
            }
        }
        p += n;
    }
    return count;
}
