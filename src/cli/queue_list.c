/*
 * queue_list.c - `smtpkit queue list` and `show`: the outbound queue as
 * its envelope records say it is (queue/envelope.h; RFC 5321 6.1, RFC 3461
 * ENVID/RET/ORCPT/NOTIFY), as text for people or JSON (client/
 * json_writer.c) for programs. Reads files only: no lock (records are
 * replaced by rename, so each read sees one whole version) and no server.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/queue_cli.h"
#include "client/json_writer.h"

#define HEADERS_MAX (64u << 10) /* octets of a message's header section shown */

/* Text from a record or a message, with control bytes (but tab) shown
 * as '?' so nothing in the queue can drive the terminal. */
static void put_safe(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc((c < 0x20 && c != '\t') || c == 0x7f ? '?' : c, out);
    }
}

static void puts_safe(FILE *out, const char *s)
{
    put_safe(out, s, strlen(s));
}

/* "45s", "12m", "3h05m", "2d03h". */
static void fmt_span(long long s, char *buf, size_t cap)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(buf, cap, "%llds", s);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm", s / 60);
    else if (s < 86400)
        snprintf(buf, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, cap, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

static void fmt_time(long long t, char *buf, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, cap, "%lld", t);
}

static int is_final(sk_envelope_state s)
{
    return s == SK_ENV_SENT || s == SK_ENV_BOUNCED;
}

/* ---- text ---------------------------------------------------------- */

static void text_last_reply(FILE *out, const sk_envelope_reply *l)
{
    if (!l->code && !l->text[0])
        return;
    fputs("  last ", out);
    if (l->code)
        fprintf(out, "%d ", l->code);
    if (l->enhanced[0]) {
        puts_safe(out, l->enhanced);
        fputc(' ', out);
    }
    fputc('"', out);
    puts_safe(out, l->text);
    fputc('"', out);
    if (l->host[0]) {
        fputs(" from ", out);
        puts_safe(out, l->host);
    }
}

static void text_rcpt_line(FILE *out, const sk_envelope_rcpt *r, time_t now)
{
    char span[32];
    fputs("    <", out);
    puts_safe(out, r->addr);
    fprintf(out, ">  %s  attempts %u", sk_envelope_state_name(r->state), r->attempts);
    if (r->state == SK_ENV_DEFERRED || r->state == SK_ENV_PENDING) {
        if (r->next_attempt > (long long)now) {
            fmt_span(r->next_attempt - (long long)now, span, sizeof span);
            fprintf(out, "  next in %s", span);
        } else {
            fputs("  next now", out);
        }
    }
    text_last_reply(out, &r->last);
    fputc('\n', out);
}

static void text_message_line(FILE *out, const sk_envelope *e, time_t now)
{
    char age[32];
    fmt_span((long long)now - e->arrival, age, sizeof age);
    fprintf(out, "%s  age %s  %llu octets  from <", e->id, age, e->size);
    puts_safe(out, e->sender);
    fputs(">\n", out);
}

/* ---- JSON ---------------------------------------------------------- */

static void json_message(sk_json *j, const sk_envelope *e, time_t now)
{
    sk_json_kv_string(j, "id", e->id);
    sk_json_kv_int(j, "arrival", e->arrival);
    sk_json_kv_int(j, "age", (long long)now - e->arrival);
    sk_json_kv_int(j, "size", (long long)e->size);
    sk_json_kv_string(j, "sender", e->sender);
    sk_json_kv_string(j, "envid", e->envid[0] ? e->envid : NULL);
    sk_json_kv_string(j, "ret", e->ret[0] ? e->ret : NULL);
    sk_json_kv_string(j, "body", sk_body_type_name(e->body));
    sk_json_kv_bool(j, "smtputf8", e->smtputf8);
    sk_json_key(j, "recipients");
    sk_json_begin_array(j);
    for (size_t i = 0; i < e->nrcpts; i++) {
        const sk_envelope_rcpt *r = &e->rcpts[i];
        sk_json_begin_object(j);
        sk_json_kv_string(j, "address", r->addr);
        sk_json_kv_string(j, "orcpt", r->orcpt[0] ? r->orcpt : NULL);
        sk_json_kv_string(j, "notify", r->notify[0] ? r->notify : NULL);
        sk_json_kv_string(j, "state", sk_envelope_state_name(r->state));
        sk_json_kv_bool(j, "final", is_final(r->state));
        sk_json_kv_int(j, "attempts", r->attempts);
        sk_json_kv_int(j, "next_attempt", r->next_attempt);
        sk_json_key(j, "last_reply");
        if (r->last.code || r->last.text[0]) {
            sk_json_begin_object(j);
            sk_json_kv_int(j, "code", r->last.code);
            sk_json_kv_string(j, "enhanced", r->last.enhanced[0] ? r->last.enhanced : NULL);
            sk_json_kv_string(j, "host", r->last.host[0] ? r->last.host : NULL);
            sk_json_kv_string(j, "text", r->last.text);
            sk_json_end_object(j);
        } else {
            sk_json_null(j);
        }
        sk_json_end_object(j);
    }
    sk_json_end_array(j);
}

static int json_flush(sk_json *j, sk_buf *b, FILE *out)
{
    if (j->failed) {
        fprintf(stderr, "smtpkit queue: out of memory writing JSON\n");
        return SK_QUEUE_EXIT_ERROR;
    }
    fwrite(b->data, 1, b->len, out);
    fputc('\n', out);
    return SK_QUEUE_EXIT_OK;
}

/* ---- list ---------------------------------------------------------- */

typedef struct list_state {
    FILE *out;
    sk_json *j; /* NULL: text */
    time_t now;
    unsigned long messages, rcpts, held, broken;
} list_state;

static int list_cb(void *arg, const char *id, const sk_envelope *e, const char *err)
{
    list_state *s = arg;
    if (!e) {
        s->broken++;
        if (s->j)
            return 0; /* listed under "broken" in a second pass */
        fprintf(s->out, "%s  broken: ", id);
        puts_safe(s->out, err ? err : "unreadable");
        fputc('\n', s->out);
        return 0;
    }
    s->messages++;
    s->rcpts += e->nrcpts;
    for (size_t i = 0; i < e->nrcpts; i++)
        s->held += e->rcpts[i].state == SK_ENV_HELD;
    if (s->j) {
        sk_json_begin_object(s->j);
        json_message(s->j, e, s->now);
        sk_json_end_object(s->j);
        return 0;
    }
    text_message_line(s->out, e, s->now);
    for (size_t i = 0; i < e->nrcpts; i++)
        text_rcpt_line(s->out, &e->rcpts[i], s->now);
    return 0;
}

static int broken_cb(void *arg, const char *id, const sk_envelope *e, const char *err)
{
    sk_json *j = arg;
    if (!e) {
        sk_json_begin_object(j);
        sk_json_kv_string(j, "id", id);
        sk_json_kv_string(j, "error", err ? err : "unreadable");
        sk_json_end_object(j);
    }
    return 0;
}

int sk_queue_list(sk_queue_dir *q, int json, time_t now, FILE *out)
{
    sk_buf b;
    sk_json j;
    sk_buf_init(&b, 0);
    sk_json_init(&j, &b);
    list_state s = {.out = out, .j = json ? &j : NULL, .now = now};
    if (json) {
        sk_json_begin_object(&j);
        sk_json_key(&j, "messages");
        sk_json_begin_array(&j);
    }
    int r = sk_queue_dir_scan(q, list_cb, &s);
    if (r == 0 && json) {
        sk_json_end_array(&j);
        sk_json_key(&j, "broken");
        sk_json_begin_array(&j);
        if (s.broken)
            r = sk_queue_dir_scan(q, broken_cb, &j);
        sk_json_end_array(&j);
        sk_json_end_object(&j);
    }
    if (r < 0) {
        fprintf(stderr, "smtpkit queue: cannot read %s: %s\n", sk_queue_dir_root(q),
                strerror(errno));
        sk_buf_free(&b);
        return SK_QUEUE_EXIT_ERROR;
    }
    int rc = SK_QUEUE_EXIT_OK;
    if (json) {
        rc = json_flush(&j, &b, out);
    } else if (s.messages == 0 && s.broken == 0) {
        fputs("queue is empty\n", out);
    } else {
        fprintf(out, "-- %lu message%s, %lu recipient%s", s.messages, s.messages == 1 ? "" : "s",
                s.rcpts, s.rcpts == 1 ? "" : "s");
        if (s.held)
            fprintf(out, ", %lu held", s.held);
        if (s.broken)
            fprintf(out, ", %lu broken record%s", s.broken, s.broken == 1 ? "" : "s");
        fputc('\n', out);
    }
    sk_buf_free(&b);
    return rc;
}

/* ---- show ---------------------------------------------------------- */

/* The header section of the message file (up to the empty line, at most
 * HEADERS_MAX octets) into b. 0, or -1 with errno. */
static int read_headers(sk_queue_dir *q, const char *id, sk_buf *b)
{
    int fd = openat(sk_queue_dir_msg_fd(q), id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        size_t room = HEADERS_MAX - b->len;
        if (sk_buf_append(b, chunk, (size_t)n < room ? (size_t)n : room) < 0) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        const char *end = memmem(b->data, b->len, "\r\n\r\n", 4);
        const char *lf = memmem(b->data, b->len, "\n\n", 2);
        if (end || lf) {
            size_t keep = end ? (size_t)(end - b->data) + 2 : (size_t)(lf - b->data) + 1;
            if (lf && (size_t)(lf - b->data) + 1 < keep)
                keep = (size_t)(lf - b->data) + 1;
            b->len = keep;
            b->data[keep] = '\0';
            break;
        }
        if (b->len >= HEADERS_MAX)
            break;
    }
    close(fd);
    return 0;
}

int sk_queue_show(sk_queue_dir *q, const char *id, int json, time_t now, FILE *out)
{
    sk_envelope e;
    char why[256] = "";
    if (sk_queue_dir_load(q, id, &e, why, sizeof why) < 0) {
        if (errno == ENOENT) {
            fprintf(stderr, "smtpkit queue: %s: no such message in the queue\n", id);
            return SK_QUEUE_EXIT_NO_MESSAGE;
        }
        fprintf(stderr, "smtpkit queue: %s: cannot read its record: %s\n", id,
                why[0] ? why : strerror(errno));
        return SK_QUEUE_EXIT_ERROR;
    }
    sk_buf h;
    sk_buf_init(&h, HEADERS_MAX);
    char hdr_err[128] = "";
    if (read_headers(q, id, &h) < 0)
        snprintf(hdr_err, sizeof hdr_err, "message file msg/%s: %s", id, strerror(errno));
    int rc = SK_QUEUE_EXIT_OK;
    if (json) {
        sk_buf b;
        sk_json j;
        sk_buf_init(&b, 0);
        sk_json_init(&j, &b);
        sk_json_begin_object(&j);
        json_message(&j, &e, now);
        char path[4096];
        if (sk_queue_dir_msg_path(q, id, path, sizeof path) == 0)
            sk_json_kv_string(&j, "message_file", path);
        sk_json_key(&j, "headers");
        if (hdr_err[0]) {
            sk_json_null(&j);
            sk_json_kv_string(&j, "headers_error", hdr_err);
        } else {
            sk_json_stringn(&j, h.data ? h.data : "", h.len);
        }
        sk_json_end_object(&j);
        rc = json_flush(&j, &b, out);
        sk_buf_free(&b);
    } else {
        char t[64], span[32];
        fmt_time(e.arrival, t, sizeof t);
        fmt_span((long long)now - e.arrival, span, sizeof span);
        fprintf(out, "id          %s\narrival     %s (%s ago)\nsize        %llu octets\n", e.id, t,
                span, e.size);
        fputs("sender      <", out);
        puts_safe(out, e.sender);
        fputs(">\nenvid       ", out);
        puts_safe(out, e.envid[0] ? e.envid : "-");
        fputs("\nret         ", out);
        puts_safe(out, e.ret[0] ? e.ret : "-");
        fprintf(out, "\nbody        %s\nsmtputf8    %s\n", sk_body_type_name(e.body),
                e.smtputf8 ? "yes" : "no");
        for (size_t i = 0; i < e.nrcpts; i++) {
            const sk_envelope_rcpt *r = &e.rcpts[i];
            fputs("recipient   <", out);
            puts_safe(out, r->addr);
            fprintf(out, ">\n  state     %s\n  attempts  %u\n", sk_envelope_state_name(r->state),
                    r->attempts);
            fmt_time(r->next_attempt, t, sizeof t);
            fprintf(out, "  next      %s\n", t);
            fputs("  orcpt     ", out);
            puts_safe(out, r->orcpt[0] ? r->orcpt : "-");
            fputs("\n  notify    ", out);
            puts_safe(out, r->notify[0] ? r->notify : "-");
            fputs("\n  last      ", out);
            if (r->last.code || r->last.text[0]) {
                if (r->last.code)
                    fprintf(out, "%d ", r->last.code);
                if (r->last.enhanced[0]) {
                    puts_safe(out, r->last.enhanced);
                    fputc(' ', out);
                }
                puts_safe(out, r->last.text);
                if (r->last.host[0]) {
                    fputs(" (from ", out);
                    puts_safe(out, r->last.host);
                    fputc(')', out);
                }
            } else {
                fputs("-", out);
            }
            fputc('\n', out);
        }
        char path[4096];
        if (sk_queue_dir_msg_path(q, id, path, sizeof path) == 0)
            fprintf(out, "message     %s\n", path);
        if (hdr_err[0]) {
            fprintf(out, "\n(headers unavailable: %s)\n", hdr_err);
        } else {
            fputs("\n", out);
            /* line by line: CRLF shown as LF, other control bytes as '?' */
            const char *p = h.data ? h.data : "", *end = p + h.len;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                size_t m = n && p[n - 1] == '\r' ? n - 1 : n;
                put_safe(out, p, m);
                fputc('\n', out);
                p += nl ? n + 1 : n;
            }
        }
    }
    sk_buf_free(&h);
    sk_envelope_clear(&e);
    return rc;
}
