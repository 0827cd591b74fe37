/*
 * dovecot_auth_proto.c - the lines of Dovecot's authentication client
 * protocol 1.x parsed and formatted without I/O (see
 * dovecot_auth_proto.h): a bounded line buffer, TAB-separated fields
 * unescaped in place, the records the SMTP AUTH (RFC 4954) client needs.
 */
#include "server/dovecot_auth_proto.h"

#include <stdio.h>
#include <string.h>

void sk_dauth_parser_init(sk_dauth_parser *p)
{
    p->len = 0;
    p->failed = 0;
}

/* Dovecot's str_tabunescape, in place. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '\001' && r[1]) {
            r++;
            *w++ = *r == 't' ? '\t' : *r == 'r' ? '\r' : *r == 'n' ? '\n' : *r == '1' ? '\001' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* A decimal number with no sign, no leading junk, that fits. */
static int number(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 400000000UL)
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    *out = v;
    return 0;
}

static int fail(sk_dauth_parser *p, const char **why, const char *msg)
{
    p->failed = 1;
    p->len = 0;
    *why = msg;
    return -1;
}

static int parse_line(sk_dauth_parser *p, sk_dauth_record *r, const char **why)
{
    memset(r, 0, sizeof *r);
    char *line = p->line;
    line[p->len] = '\0';
    if (memchr(line, '\0', p->len))
        return fail(p, why, "NUL byte in a line from the auth server");
    /* split on TAB */
    char *f = line, *tab = strchr(f, '\t');
    if (tab)
        *tab = '\0';
    r->command = f;
    while (tab) {
        f = tab + 1;
        tab = strchr(f, '\t');
        if (tab)
            *tab = '\0';
        if (r->nargs == SK_DAUTH_MAX_ARGS)
            return fail(p, why, "too many fields in a line from the auth server");
        r->args[r->nargs++] = f;
    }
    for (size_t i = 0; i < r->nargs; i++)
        unescape((char *)r->args[i]);
    const char *c = r->command;
    if (!strcmp(c, "VERSION")) {
        r->type = SK_DAUTH_VERSION;
        if (r->nargs < 2 || number(r->args[0], &r->major) || number(r->args[1], &r->minor))
            return fail(p, why, "malformed VERSION from the auth server");
    } else if (!strcmp(c, "MECH")) {
        r->type = SK_DAUTH_MECH;
        if (r->nargs < 1 || !*r->args[0])
            return fail(p, why, "malformed MECH from the auth server");
        r->mech = r->args[0];
        for (size_t i = 1; i < r->nargs; i++) {
            if (!strcmp(r->args[i], "plaintext"))
                r->mech_flags |= SK_DAUTH_MECH_PLAINTEXT;
            else if (!strcmp(r->args[i], "private"))
                r->mech_flags |= SK_DAUTH_MECH_PRIVATE;
            else if (!strcmp(r->args[i], "anonymous"))
                r->mech_flags |= SK_DAUTH_MECH_ANONYMOUS;
        }
    } else if (!strcmp(c, "SPID")) {
        r->type = SK_DAUTH_SPID;
    } else if (!strcmp(c, "CUID")) {
        r->type = SK_DAUTH_CUID;
    } else if (!strcmp(c, "COOKIE")) {
        r->type = SK_DAUTH_COOKIE;
    } else if (!strcmp(c, "DONE")) {
        r->type = SK_DAUTH_DONE;
    } else if (!strcmp(c, "OK") || !strcmp(c, "CONT") || !strcmp(c, "FAIL")) {
        r->type = c[0] == 'O' ? SK_DAUTH_OK : c[0] == 'C' ? SK_DAUTH_CONT : SK_DAUTH_FAIL;
        if (r->nargs < 1 || number(r->args[0], &r->id) || r->id == 0)
            return fail(p, why, "reply without a valid request id from the auth server");
        if (r->type == SK_DAUTH_CONT) {
            if (r->nargs < 2)
                return fail(p, why, "CONT without data from the auth server");
            r->data = r->args[1];
        } else {
            for (size_t i = 1; i < r->nargs; i++) {
                const char *a = r->args[i];
                if (!strncmp(a, "user=", 5))
                    r->user = a + 5;
                else if (!strncmp(a, "reason=", 7))
                    r->reason = a + 7;
                else if (!strcmp(a, "temp") || !strcmp(a, "code=temp_fail"))
                    r->temp = 1;
            }
        }
    } else {
        r->type = SK_DAUTH_OTHER;
    }
    return 1;
}

int sk_dauth_parse(sk_dauth_parser *p, const char **data, size_t *n, sk_dauth_record *rec,
                   const char **why)
{
    *why = NULL;
    if (p->failed) {
        *why = "auth connection already failed";
        return -1;
    }
    const char *d = *data;
    const char *lf = memchr(d, '\n', *n);
    size_t take = lf ? (size_t)(lf - d) : *n;
    if (p->len + take > SK_DAUTH_LINE_MAX)
        return fail(p, why, "line from the auth server too long");
    memcpy(p->line + p->len, d, take);
    p->len += take;
    size_t used = take + (lf ? 1 : 0);
    *data += used;
    *n -= used;
    if (!lf)
        return 0;
    int r = parse_line(p, rec, why);
    p->len = 0;
    return r;
}

size_t sk_dauth_format_handshake(char *out, size_t outlen, unsigned long pid)
{
    int n = snprintf(out, outlen, "VERSION\t%d\t2\nCPID\t%lu\n", SK_DAUTH_MAJOR, pid);
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

/* Append s escaped; -1 if it does not fit. */
static int put_escaped(char *out, size_t outlen, size_t *o, const char *s)
{
    for (; *s; s++) {
        char e = *s == '\001' ? '1' : *s == '\t' ? 't' : *s == '\r' ? 'r' : *s == '\n' ? 'n' : 0;
        size_t need = e ? 2 : 1;
        if (*o + need >= outlen)
            return -1;
        if (e) {
            out[(*o)++] = '\001';
            out[(*o)++] = e;
        } else {
            out[(*o)++] = *s;
        }
    }
    out[*o] = '\0';
    return 0;
}

static int put_raw(char *out, size_t outlen, size_t *o, const char *s)
{
    size_t l = strlen(s);
    if (*o + l >= outlen)
        return -1;
    memcpy(out + *o, s, l + 1);
    *o += l;
    return 0;
}

static int put_param(char *out, size_t outlen, size_t *o, const char *key, const char *value)
{
    return put_raw(out, outlen, o, "\t") || put_raw(out, outlen, o, key) ||
                   put_raw(out, outlen, o, "=") || put_escaped(out, outlen, o, value)
               ? -1
               : 0;
}

size_t sk_dauth_format_auth(char *out, size_t outlen, const sk_dauth_auth *a)
{
    if (!a->id || !a->mech || !*a->mech || !a->service || outlen == 0)
        return 0;
    size_t o = 0;
    char num[32];
    snprintf(num, sizeof num, "%lu", a->id);
    if (put_raw(out, outlen, &o, "AUTH\t") || put_raw(out, outlen, &o, num) ||
        put_raw(out, outlen, &o, "\t") || put_escaped(out, outlen, &o, a->mech) ||
        put_param(out, outlen, &o, "service", a->service) ||
        /* nologin: the user does not log in here (Postfix sends it too) */
        put_raw(out, outlen, &o, "\tnologin") ||
        (a->secured && put_raw(out, outlen, &o, "\tsecured")) ||
        (a->lip && put_param(out, outlen, &o, "lip", a->lip)) ||
        (a->rip && put_param(out, outlen, &o, "rip", a->rip)))
        return 0;
    if (a->lport) {
        snprintf(num, sizeof num, "%u", a->lport);
        if (put_param(out, outlen, &o, "lport", num))
            return 0;
    }
    if (a->rport) {
        snprintf(num, sizeof num, "%u", a->rport);
        if (put_param(out, outlen, &o, "rport", num))
            return 0;
    }
    if (a->resp && put_param(out, outlen, &o, "resp", a->resp))
        return 0;
    if (put_raw(out, outlen, &o, "\n"))
        return 0;
    return o;
}

size_t sk_dauth_format_cont(char *out, size_t outlen, unsigned long id, const char *b64)
{
    size_t o = 0;
    char num[32];
    snprintf(num, sizeof num, "%lu", id);
    if (!id || outlen == 0 || put_raw(out, outlen, &o, "CONT\t") || put_raw(out, outlen, &o, num) ||
        put_raw(out, outlen, &o, "\t") || put_escaped(out, outlen, &o, b64) ||
        put_raw(out, outlen, &o, "\n"))
        return 0;
    return o;
}
