/*
 * envelope.c - the outbound queue's envelope record: its text form, a
 * strict parser, and atomic replacement on disk (write a temp file, fsync,
 * rename, fsync the directory). RFC 5321 6.1 (the queue keeps what a 250
 * promised), RFC 3461 (ENVID, RET, ORCPT, NOTIFY kept for RFC 3464 reports).
 * The format is described in envelope.h and docs/STORE.md.
 */
#include "queue/envelope.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "smtpkit-envelope"

static const char *const state_names[] = {"pending", "sent", "deferred", "bounced", "held"};
static const char *const body_names[] = {"7bit", "8bitmime", "binarymime"};

const char *sk_envelope_state_name(sk_envelope_state s)
{
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "?";
}

const char *sk_body_type_name(sk_body_type b)
{
    return (unsigned)b < sizeof body_names / sizeof body_names[0] ? body_names[b] : "?";
}

static char empty_string[] = "";

/* Strings of a record are never NULL: "" is the shared empty string. */
static void free_str(char **p)
{
    if (*p && *p != empty_string)
        free(*p);
    *p = empty_string;
}

void sk_envelope_init(sk_envelope *e)
{
    memset(e, 0, sizeof *e);
    e->sender = e->envid = e->ret = empty_string;
}

static void rcpt_clear(sk_envelope_rcpt *r)
{
    free_str(&r->addr);
    free_str(&r->orcpt);
    free_str(&r->notify);
    free_str(&r->last.enhanced);
    free_str(&r->last.host);
    free_str(&r->last.text);
}

void sk_envelope_clear(sk_envelope *e)
{
    if (!e)
        return;
    free_str(&e->sender);
    free_str(&e->envid);
    free_str(&e->ret);
    for (size_t i = 0; i < e->nrcpts; i++)
        rcpt_clear(&e->rcpts[i]);
    free(e->rcpts);
    sk_envelope_init(e);
}

int sk_envelope_set(char **field, const char *value)
{
    if (!value || !*value) {
        free_str(field);
        return 0;
    }
    size_t n = strlen(value);
    if (n > SK_ENVELOPE_MAX_VALUE)
        return -1;
    char *c = malloc(n + 1);
    if (!c)
        return -1;
    memcpy(c, value, n + 1);
    free_str(field);
    *field = c;
    return 0;
}

static sk_envelope_rcpt *grow_rcpt(sk_envelope *e)
{
    if (e->nrcpts >= SK_ENVELOPE_MAX_RCPTS)
        return NULL;
    sk_envelope_rcpt *v = realloc(e->rcpts, (e->nrcpts + 1) * sizeof *v);
    if (!v)
        return NULL;
    e->rcpts = v;
    sk_envelope_rcpt *r = &v[e->nrcpts++];
    memset(r, 0, sizeof *r);
    r->addr = r->orcpt = r->notify = empty_string;
    r->last.enhanced = r->last.host = r->last.text = empty_string;
    return r;
}

int sk_envelope_add_rcpt(sk_envelope *e, const char *addr, const char *orcpt, const char *notify,
                         long long next_attempt)
{
    if (!addr || !*addr)
        return -1;
    sk_envelope_rcpt *r = grow_rcpt(e);
    if (!r)
        return -1;
    r->next_attempt = next_attempt;
    if (sk_envelope_set(&r->addr, addr) < 0 || sk_envelope_set(&r->orcpt, orcpt) < 0 ||
        sk_envelope_set(&r->notify, notify) < 0) {
        rcpt_clear(r);
        e->nrcpts--;
        return -1;
    }
    return 0;
}

/* ---- writing ------------------------------------------------------------ */

static int id_valid(const char *id)
{
    size_t n = strnlen(id, 32);
    if (n == 0 || n >= 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

static int ret_valid(const char *r)
{
    return !*r || !strcmp(r, "FULL") || !strcmp(r, "HDRS");
}

/* One value as one token. */
static int put_value(sk_buf *out, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!v || !*v)
        return sk_buf_append(out, "-", 1);
    if (strlen(v) > SK_ENVELOPE_MAX_VALUE)
        return -1;
    if (!strcmp(v, "-"))
        return sk_buf_append(out, "%2D", 3);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '%') {
            if (sk_buf_append(out, p, 1) < 0)
                return -1;
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            if (sk_buf_append(out, esc, 3) < 0)
                return -1;
        }
    }
    return 0;
}

static int put_field(sk_buf *out, const char *key, const char *v)
{
    return (sk_buf_append_str(out, key) < 0 || sk_buf_append(out, " ", 1) < 0 ||
            put_value(out, v) < 0 || sk_buf_append(out, "\n", 1) < 0)
               ? -1
               : 0;
}

int sk_envelope_format(const sk_envelope *e, sk_buf *out)
{
    if (!e || !out || !id_valid(e->id) || e->nrcpts == 0 || e->nrcpts > SK_ENVELOPE_MAX_RCPTS ||
        !ret_valid(e->ret) || (unsigned)e->body > SK_BODY_BINARYMIME || e->arrival < 0)
        return -1;
    if (sk_buf_printf(out, MAGIC " %d\nid %s\narrival %lld\nsize %llu\n", SK_ENVELOPE_VERSION,
                      e->id, e->arrival, e->size) < 0 ||
        put_field(out, "sender", e->sender) < 0 || put_field(out, "envid", e->envid) < 0 ||
        put_field(out, "ret", e->ret) < 0 ||
        sk_buf_printf(out, "body %s\nsmtputf8 %d\n", body_names[e->body], e->smtputf8 ? 1 : 0) < 0)
        return -1;
    for (size_t i = 0; i < e->nrcpts; i++) {
        const sk_envelope_rcpt *r = &e->rcpts[i];
        if (!r->addr || !*r->addr || (unsigned)r->state > SK_ENV_HELD || r->next_attempt < 0 ||
            (r->last.code != 0 && (r->last.code < 200 || r->last.code > 599)))
            return -1;
        if (sk_buf_append_str(out, "rcpt ") < 0 || put_value(out, r->addr) < 0 ||
            sk_buf_append(out, " ", 1) < 0 || put_value(out, r->orcpt) < 0 ||
            sk_buf_append(out, " ", 1) < 0 || put_value(out, r->notify) < 0 ||
            sk_buf_printf(out, " %s %u %lld %d ", state_names[r->state], r->attempts,
                          r->next_attempt, r->last.code) < 0 ||
            put_value(out, r->last.enhanced) < 0 || sk_buf_append(out, " ", 1) < 0 ||
            put_value(out, r->last.host) < 0 || sk_buf_append(out, " ", 1) < 0 ||
            put_value(out, r->last.text) < 0 || sk_buf_append(out, "\n", 1) < 0)
            return -1;
    }
    return sk_buf_append_str(out, "end\n");
}

/* ---- parsing ------------------------------------------------------------ */

typedef struct parser {
    const char *p, *end;
    unsigned line;
    char *err;
    size_t errlen;
} parser;

__attribute__((format(printf, 2, 3))) static int perr(parser *P, const char *fmt, ...)
{
    if (P->err && P->errlen) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(P->err, P->errlen, "line %u: %s", P->line, msg);
    }
    return -1;
}

/* The next line (without its LF) into *l, *n. -1 at the end of the data or
 * when the last line has no LF (a truncated record). */
static int next_line(parser *P, const char **l, size_t *n)
{
    P->line++;
    if (P->p >= P->end)
        return perr(P, "unexpected end of record (truncated?)");
    const char *nl = memchr(P->p, '\n', (size_t)(P->end - P->p));
    if (!nl)
        return perr(P, "line not terminated (truncated?)");
    *l = P->p;
    *n = (size_t)(nl - P->p);
    P->p = nl + 1;
    return 0;
}

/* Split off the next space-separated token of [*s, end). */
static int token(const char **s, const char *end, const char **t, size_t *tn)
{
    if (*s >= end)
        return -1;
    const char *sp = memchr(*s, ' ', (size_t)(end - *s));
    *t = *s;
    *tn = sp ? (size_t)(sp - *s) : (size_t)(end - *s);
    if (*tn == 0)
        return -1; /* two spaces, or a leading/trailing one */
    *s = sp ? sp + 1 : end;
    if (sp && *s == end)
        return -1; /* trailing space */
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode one escaped token into a new string (*out: "" for "-"). */
static int decode(parser *P, const char *t, size_t n, char **out, const char *what)
{
    if (n == 1 && t[0] == '-') {
        *out = empty_string;
        return 0;
    }
    char *d = malloc(n + 1);
    if (!d)
        return perr(P, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(t[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(t[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(d);
                return perr(P, "bad escape in %s", what);
            }
            d[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c > 0x20 && c < 0x7f) {
            d[o++] = (char)c;
        } else {
            free(d);
            return perr(P, "unescaped byte 0x%02X in %s", c, what);
        }
    }
    d[o] = '\0';
    if (o > SK_ENVELOPE_MAX_VALUE) {
        free(d);
        return perr(P, "%s too long", what);
    }
    *out = d;
    return 0;
}

/* A decimal number without sign or leading zeros, at most max. */
static int number(const char *t, size_t n, unsigned long long max, unsigned long long *v)
{
    if (n == 0 || n > 20 || (n > 1 && t[0] == '0'))
        return -1;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return -1;
        unsigned d = (unsigned)(t[i] - '0');
        if (d > max || x > (max - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* "key value" where value is the rest of the line; returns the value. */
static int keyed(parser *P, const char *key, const char **v, size_t *vn)
{
    const char *l;
    size_t n;
    if (next_line(P, &l, &n) < 0)
        return -1;
    size_t kl = strlen(key);
    if (n < kl + 2 || memcmp(l, key, kl) != 0 || l[kl] != ' ')
        return perr(P, "expected \"%s\"", key);
    *v = l + kl + 1;
    *vn = n - kl - 1;
    if (memchr(*v, ' ', *vn))
        return perr(P, "%s: one value expected", key);
    return 0;
}

static int keyed_number(parser *P, const char *key, unsigned long long max, unsigned long long *v)
{
    const char *t;
    size_t n;
    if (keyed(P, key, &t, &n) < 0)
        return -1;
    if (number(t, n, max, v) < 0)
        return perr(P, "%s: not a number", key);
    return 0;
}

static int keyed_string(parser *P, const char *key, char **out)
{
    const char *t;
    size_t n;
    if (keyed(P, key, &t, &n) < 0)
        return -1;
    char *s;
    if (decode(P, t, n, &s, key) < 0)
        return -1;
    free_str(out);
    *out = s;
    return 0;
}

static int word_index(const char *t, size_t n, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], t, n))
            return (int)i;
    return -1;
}

static int parse_rcpt(parser *P, sk_envelope *e, const char *s, const char *end)
{
    const char *t[10];
    size_t tn[10];
    for (int i = 0; i < 10; i++) {
        if (token(&s, end, &t[i], &tn[i]) < 0)
            return perr(P, "rcpt: 10 values expected");
    }
    if (s != end)
        return perr(P, "rcpt: 10 values expected");
    sk_envelope_rcpt *r = grow_rcpt(e);
    if (!r)
        return perr(P, "too many recipients");
    if (decode(P, t[0], tn[0], &r->addr, "address") < 0 ||
        decode(P, t[1], tn[1], &r->orcpt, "orcpt") < 0 ||
        decode(P, t[2], tn[2], &r->notify, "notify") < 0)
        return -1;
    if (!*r->addr)
        return perr(P, "rcpt: empty address");
    int st = word_index(t[3], tn[3], state_names, sizeof state_names / sizeof state_names[0]);
    if (st < 0)
        return perr(P, "rcpt: unknown state");
    r->state = (sk_envelope_state)st;
    unsigned long long v;
    if (number(t[4], tn[4], 1000000000ULL, &v) < 0)
        return perr(P, "rcpt: bad attempts");
    r->attempts = (unsigned)v;
    if (number(t[5], tn[5], (unsigned long long)1 << 62, &v) < 0)
        return perr(P, "rcpt: bad next attempt time");
    r->next_attempt = (long long)v;
    if (number(t[6], tn[6], 599, &v) < 0 || (v != 0 && v < 200))
        return perr(P, "rcpt: bad reply code");
    r->last.code = (int)v;
    if (decode(P, t[7], tn[7], &r->last.enhanced, "enhanced code") < 0 ||
        decode(P, t[8], tn[8], &r->last.host, "host") < 0 ||
        decode(P, t[9], tn[9], &r->last.text, "reply text") < 0)
        return -1;
    return 0;
}

static int parse_all(parser *P, sk_envelope *e)
{
    const char *l, *t;
    size_t n, tn;
    unsigned long long v;
    if (next_line(P, &l, &n) < 0)
        return -1;
    if (n != sizeof MAGIC + 1 || memcmp(l, MAGIC " ", sizeof MAGIC) != 0)
        return perr(P, "not an envelope record");
    if (l[n - 1] != '0' + SK_ENVELOPE_VERSION)
        return perr(P, "unsupported version %c", l[n - 1]);
    if (keyed(P, "id", &t, &tn) < 0)
        return -1;
    if (tn >= sizeof e->id)
        return perr(P, "id too long");
    memcpy(e->id, t, tn);
    e->id[tn] = '\0';
    if (!id_valid(e->id))
        return perr(P, "bad id");
    if (keyed_number(P, "arrival", (unsigned long long)1 << 62, &v) < 0)
        return -1;
    e->arrival = (long long)v;
    if (keyed_number(P, "size", (unsigned long long)1 << 62, &v) < 0)
        return -1;
    e->size = v;
    if (keyed_string(P, "sender", &e->sender) < 0 || keyed_string(P, "envid", &e->envid) < 0 ||
        keyed_string(P, "ret", &e->ret) < 0)
        return -1;
    if (!ret_valid(e->ret))
        return perr(P, "ret: FULL, HDRS or - expected");
    if (keyed(P, "body", &t, &tn) < 0)
        return -1;
    int b = word_index(t, tn, body_names, sizeof body_names / sizeof body_names[0]);
    if (b < 0)
        return perr(P, "body: 7bit, 8bitmime or binarymime expected");
    e->body = (sk_body_type)b;
    if (keyed_number(P, "smtputf8", 1, &v) < 0)
        return -1;
    e->smtputf8 = (int)v;
    for (;;) {
        if (next_line(P, &l, &n) < 0)
            return -1;
        if (n == 3 && !memcmp(l, "end", 3))
            break;
        if (n < 5 || memcmp(l, "rcpt ", 5) != 0)
            return perr(P, "expected \"rcpt\" or \"end\"");
        if (parse_rcpt(P, e, l + 5, l + n) < 0)
            return -1;
    }
    if (e->nrcpts == 0)
        return perr(P, "no recipient");
    if (P->p != P->end) {
        P->line++;
        return perr(P, "data after \"end\"");
    }
    return 0;
}

int sk_envelope_parse(const char *data, size_t len, sk_envelope *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    sk_envelope_init(out);
    parser P = {.line = 1, .err = err, .errlen = errlen};
    if (!data)
        return perr(&P, "no data");
    if (len > SK_ENVELOPE_MAX_FILE || memchr(data, '\0', len))
        return perr(&P, len > SK_ENVELOPE_MAX_FILE ? "record too large" : "NUL byte in record");
    P.p = data;
    P.end = data + len;
    P.line = 0;
    if (parse_all(&P, out) < 0) {
        sk_envelope_clear(out);
        return -1;
    }
    return 0;
}

/* ---- files -------------------------------------------------------------- */

int sk_envelope_load(int dirfd, const char *name, sk_envelope *out, char *err, size_t errlen)
{
    sk_envelope_init(out);
    if (err && errlen)
        err[0] = '\0';
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size > (off_t)SK_ENVELOPE_MAX_FILE) {
        close(fd);
        if (err && errlen)
            snprintf(err, errlen, "not a regular file of at most %u octets", SK_ENVELOPE_MAX_FILE);
        errno = EINVAL;
        return -1;
    }
    size_t cap = (size_t)sb.st_size, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    int rc = sk_envelope_parse(buf, len, out, err, errlen);
    free(buf);
    if (rc < 0)
        errno = EINVAL;
    return rc;
}

static atomic_uint save_counter;

int sk_envelope_save(int dirfd, const char *name, int tmpfd, const sk_envelope *e, int sync_dir)
{
    sk_buf b;
    sk_buf_init(&b, SK_ENVELOPE_MAX_FILE);
    if (sk_envelope_format(e, &b) < 0) {
        sk_buf_free(&b);
        errno = EINVAL;
        return -1;
    }
    char tmp[128];
    int n = snprintf(tmp, sizeof tmp, "%s.%ld.%u.env", name, (long)getpid(),
                     atomic_fetch_add(&save_counter, 1));
    if (n < 0 || (size_t)n >= sizeof tmp) {
        sk_buf_free(&b);
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = openat(tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        sk_buf_free(&b);
        return -1;
    }
    int rc = 0;
    for (size_t off = 0; off < b.len && rc == 0;) {
        ssize_t w = write(fd, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            rc = -1;
        } else {
            off += (size_t)w;
        }
    }
    sk_buf_free(&b);
    if (rc == 0 && fsync(fd) < 0)
        rc = -1;
    int err = errno;
    if (close(fd) < 0 && rc == 0) {
        err = errno;
        rc = -1;
    }
    if (rc == 0 && renameat(tmpfd, tmp, dirfd, name) < 0) {
        err = errno;
        rc = -1;
    }
    if (rc < 0) {
        unlinkat(tmpfd, tmp, 0);
        errno = err;
        return -1;
    }
    if (sync_dir && fsync(dirfd) < 0)
        return -1;
    return 0;
}
