/*
 * fuzz_session.c - libFuzzer target for the whole SMTP session state
 * machine: arbitrary client bytes against fake ops, fed in pieces chosen by
 * the input, following the shell contract of session.h (commit_done after
 * SK_WANT_COMMIT, tls_started after SK_WANT_TLS, stop at SK_WANT_CLOSE;
 * with knob 0x40 a policy (the shell's milters) holds every step and the
 * input picks its verdict, reply code and text: policy_done after
 * SK_WANT_POLICY).
 * Checked: every output line is a well-formed reply, every 2xx/4xx/5xx
 * reply carries an enhanced code of its class on every line whatever the
 * client sent (RFC 2034 3-4: only the greeting and the replies to HELO/EHLO
 * go without, and 3xx replies never have one), the store calls come in a
 * legal order, nothing is committed after a refusal, and feed() consumes
 * only what the contract allows.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The step the pending verdict is for: a refusal of HELO/EHLO goes without
 * an enhanced code, as every reply to HELO/EHLO does. */
static int policy_step;

typedef struct fz {
    int open; /* a message is open in the store */
    int committing;
    size_t stored; /* octets appended to the open message */
    size_t max_message;
    uint8_t knobs;
} fz;

static sk_rcpt_verdict rcpt_check(void *ctx, const sk_session_info *info, const char *addr,
                                  void **dest, const char **fwd)
{
    (void)ctx;
    if (!info || !addr || strlen(addr) > 256)
        abort();
    switch (addr[0] % 7) {
    case 0:
        return SK_RCPT_UNKNOWN;
    case 1:
        return SK_RCPT_TEMPFAIL;
    case 2:
        *fwd = "fwd@example.net";
        *dest = malloc(1);
        return SK_RCPT_FORWARD;
    case 3:
        return SK_RCPT_RELAY_DENIED;
    default:
        *dest = malloc(1);
        return SK_RCPT_ACCEPT;
    }
}

static void dest_free(void *ctx, void *dest)
{
    (void)ctx;
    free(dest);
}

static int auth_check(void *ctx, const char *user, const char *pass)
{
    (void)ctx;
    if (!user || !pass || !*user || !*pass)
        abort();
    if (strcmp(user, "t") == 0)
        return -1;
    return strcmp(pass, "p") == 0;
}

static sk_store_result store_begin(void *ctx, sk_transaction *tx)
{
    fz *z = ctx;
    if (z->open || z->committing || !tx->mail_from || tx->nrcpts == 0)
        abort();
    if (z->knobs & 0x40)
        return SK_STORE_NOSPACE;
    strcpy(tx->id, "FUZZ1");
    z->open = 1;
    z->stored = 0;
    return SK_STORE_OK;
}

static sk_store_result store_append(void *ctx, const char *p, size_t n)
{
    fz *z = ctx;
    if (!z->open || (n && !p))
        abort();
    z->stored += n;
    /* the limit applies to the message; the trace headers come on top */
    if (z->stored > z->max_message + 4096)
        abort();
    return (z->knobs & 0x80) && z->stored > 100 ? SK_STORE_IOERR : SK_STORE_OK;
}

static void store_commit(void *ctx, sk_transaction *tx)
{
    fz *z = ctx;
    if (!z->open || !tx || tx->nrcpts == 0)
        abort();
    z->open = 0;
    z->committing = 1;
}

static void store_abort(void *ctx)
{
    fz *z = ctx;
    if (!z->open)
        abort();
    z->open = 0;
}

static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    if (strchr(line, '\n') || strchr(line, '\r'))
        abort();
}

/* The length of the enhanced code that starts t (RFC 3463 2: class "."
 * 1*3digit "." 1*3digit, then a space or the end), or 0. */
static size_t enhanced_len(const char *t, size_t n)
{
    size_t k = 0;
    if (n < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
        return 0;
    k = 2;
    for (int part = 0; part < 2; part++) {
        size_t d = 0;
        while (k < n && t[k] >= '0' && t[k] <= '9' && d < 4)
            k++, d++;
        if (d == 0 || d > 3)
            return 0;
        if (part == 0) {
            if (k >= n || t[k] != '.')
                return 0;
            k++;
        }
    }
    return (k == n || t[k] == ' ') ? k : 0;
}

static int starts(const char *t, size_t n, const char *prefix)
{
    size_t m = strlen(prefix);
    return n >= m && memcmp(t, prefix, m) == 0;
}

/* A reply RFC 2034 3 lets go without an enhanced code: the greeting, and
 * the replies to HELO/EHLO (their 250 starts with our name; their 501). */
static int exempt(int code, const char *t, size_t n)
{
    if (code == 220)
        return starts(t, n, "mx.example.com ESMTP");
    if (code == 250)
        return n == strlen("mx.example.com") && starts(t, n, "mx.example.com");
    if (code == 501)
        return starts(t, n, "Syntax: HELO ") || starts(t, n, "Syntax: EHLO ");
    return 0;
}

/* Every line must be "ddd" SP/"-" text CRLF with a sane code, and carry
 * the enhanced code RFC 2034 asks for. */
static void check_output(sk_buf *out)
{
    size_t i = 0;
    int in_reply = 0;        /* a "ddd-" line came, its reply goes on */
    char first_enh[16] = ""; /* the enhanced code of the reply's first line */
    while (i < out->len) {
        const char *p = out->data + i;
        const char *nl = memchr(p, '\n', out->len - i);
        if (!nl)
            abort(); /* replies are always whole */
        size_t len = (size_t)(nl - p);
        if (len < 5 || p[len - 1] != '\r' || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '5' ||
            p[2] < '0' || p[2] > '9' || (p[3] != ' ' && p[3] != '-'))
            abort();
        for (size_t k = 4; k + 1 < len; k++)
            if ((unsigned char)p[k] < 0x20 && p[k] != '\t')
                abort();
        int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        const char *t = p + 4;
        size_t tn = len - 5, e = enhanced_len(t, tn);
        if (e && (p[0] == '3' || t[0] != p[0]))
            abort(); /* 3xx carry none; the class is the reply's */
        if (!in_reply) {
            if (!e && p[0] != '3' && !exempt(code, t, tn) &&
                !(policy_step == SK_POLICY_HELO && code >= 400))
                abort(); /* RFC 2034 4: "regardless of whether or not EHLO" */
            memcpy(first_enh, t, e);
            first_enh[e] = '\0';
        } else if (e != strlen(first_enh) || memcmp(t, first_enh, e) != 0) {
            abort(); /* every line of a reply carries the same code */
        }
        in_reply = p[3] == '-';
        i += len + 1;
    }
    sk_buf_consume(out, out->len);
}

static int policy_check(void *ctx, int step, const sk_session_info *info, const char *arg)
{
    (void)ctx;
    (void)arg;
    if (!info || step < SK_POLICY_HELO || step > SK_POLICY_DATA)
        abort();
    policy_step = step;
    return SK_POLICY_PENDING;
}

/* A verdict from the input: any action, any code, text with any octets. */
static void policy_verdict(sk_session *s, const uint8_t *d, size_t n)
{
    static const char *const enh[] = {NULL, "5.7.1", "4.7.1", "2.0.0", "5.7", "x"};
    char text[64];
    size_t k = n > 6 ? (n - 6 < sizeof text - 1 ? n - 6 : sizeof text - 1) : 0;
    if (k)
        memcpy(text, d + 6, k);
    text[k] = '\0';
    sk_policy_verdict v = {
        .action = (sk_policy_action)(n > 0 ? d[0] % 4 : 0),
        .code = n > 2 ? (d[1] % 7) * 100 + d[2] % 100 : 0,
        .enhanced = enh[n > 3 ? d[3] % 6 : 0],
        .text = n > 4 && d[4] % 2 ? text : NULL,
    };
    sk_session_policy_done(s, &v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    fz z = {0};
    z.knobs = data[0];
    uint8_t step = data[1];
    sk_session_config cfg = {
        .hostname = "mx.example.com",
        .max_message_size = (data[0] & 1) ? 64 : 100000,
        .max_recipients = 100,
        .max_line = 512,
        .max_errors = (data[0] & 2) ? 5 : 50,
        .max_commands = 1000,
        .bare_policy = (data[0] & 4) ? SK_BARE_NORMALISE : SK_BARE_REJECT,
        .starttls_offered = 1,
        .auth_offered = 1,
        .auth_requires_tls = (data[0] & 8) ? 1 : 0,
        .mail_requires_auth = (data[0] & 16) ? 1 : 0,
        .vrfy_discloses = (data[0] & 32) ? 1 : 0,
        .expn_enabled = (data[0] & 32) ? 1 : 0,
    };
    z.max_message = cfg.max_message_size;
    sk_session_ops ops = {rcpt_check,   dest_free,   auth_check, store_begin, store_append,
                          store_commit, store_abort, log_line,   NULL};
    if (data[0] & 0x40)
        ops.policy_check = policy_check;
    sk_peer peer = {"192.0.2.1", (data[1] & 1) ? "client.example" : NULL, 0};
    sk_session *s = sk_session_new(&cfg, &ops, &z, &peer);
    if (!s)
        return 0;
    sk_session_greet(s);
    check_output(sk_session_output(s));

    const char *in = (const char *)data + 2;
    size_t n = size - 2, pos = 0;
    int rounds = 0;
    while (pos < n && rounds++ < 100000) {
        size_t chunk = step ? (size_t)(step % 61) + 1 : n - pos;
        if (chunk > n - pos)
            chunk = n - pos;
        size_t used = sk_session_feed(s, in + pos, chunk);
        if (used > chunk)
            abort();
        unsigned w = sk_session_wants(s);
        check_output(sk_session_output(s));
        if (used < chunk && !(w & (SK_WANT_CLOSE | SK_WANT_TLS | SK_WANT_COMMIT | SK_WANT_POLICY)))
            abort(); /* stopped reading without saying why */
        pos += used;
        if (w & SK_WANT_CLOSE)
            break;
        if (w & SK_WANT_TLS) {
            if (sk_session_feed(s, in + pos, n - pos) != 0)
                abort();
            pos = n;
            sk_session_tls_started(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
            /* CVE-2011-0411: the rest was discarded; carry on with nothing */
            break;
        }
        if (w & SK_WANT_POLICY) {
            if (sk_session_feed(s, in + pos, n - pos) != 0)
                abort(); /* nothing is read while a verdict is pending */
            policy_verdict(s, (const uint8_t *)in + pos, n - pos);
            check_output(sk_session_output(s));
            policy_step = 0;
            w = sk_session_wants(s);
            if (w & SK_WANT_POLICY)
                abort();
        }
        if (w & SK_WANT_COMMIT) {
            if (!z.committing || sk_session_feed(s, in + pos, n - pos) != 0)
                abort();
            z.committing = 0;
            sk_session_commit_done(s, (sk_store_result)(data[pos % size] % 3));
            check_output(sk_session_output(s));
        }
        step = (uint8_t)(step * 31 + 7);
    }
    if (data[0] & 0x20)
        sk_session_timeout(s);
    else
        sk_session_disconnected(s);
    check_output(sk_session_output(s));
    if (z.open)
        abort(); /* an open message was neither committed nor aborted */
    sk_session_free(s);
    return 0;
}
