/*
 * session.c - the SMTP server session state machine (no I/O).
 *
 * RFC 5321 2.3.8 (only CRLF ends a line), 3.1 (greeting), 4.2 (exactly one
 * reply per command), 4.5.3.1.4 (command line limit, incl. CRLF), 4.5.3.2
 * (timeouts answered by 421), 4.4 (trace headers on every message), 6.3
 * (a message with too many Received fields is refused: a mail loop);
 * RFC 2920 (pipelining: all complete commands of a feed are answered in
 * order); RFC 2034 3-4 (an enhanced code on every 2xx/4xx/5xx reply but the
 * greeting and the replies to HELO/EHLO, whether or not the client said
 * EHLO); RFC 3207 4.2 (after STARTTLS everything is forgotten and unread
 * input is discarded, CVE-2011-0411); RFC 4954 4 (AUTH lines up to 12288
 * octets); RFC 3030 (BDAT chunks are read whatever the reply).
 *
 * Input arrives in any split; the session keeps one partial command line
 * (bounded by max_line, or the AUTH limit) and the DATA framer's few bits
 * of state, never a message. Every limit ends in sk_sess_close_421(), the
 * one place that answers 421, aborts what is open and asks to close.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/command_table.h"
#include "core/received.h"
#include "smtpkit/registry.h"
#include "smtpkit/reply.h"

/* Output cap: far above what any honest pipelined client makes us queue
 * (see sk_session_feed in session.h); reaching it closes the session. */
#define SK_OUT_MAX (1024 * 1024)

/* ---- small helpers ------------------------------------------------------ */

const char *sk_sess_printable(const char *src, char *dst, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return "";
    for (; src && src[i] && i + 1 < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c > 0x7e) ? '?' : (char)c;
    }
    dst[i] = '\0';
    return dst;
}

void sk_sess_log(sk_session *s, const char *fmt, ...)
{
    if (!s->ops->log)
        return;
    char line[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->ops->log(s->ctx, line);
}

/* The enhanced status code a reply carries, whatever the session state:
 * RFC 2034 4 wants one "regardless of whether or not EHLO is employed by the
 * client", on every reply "other than the initial greeting and any response
 * to HELO or EHLO" (RFC 2034 3; a refused HELO/EHLO too: its text starts
 * with our name, which a code would hide). The greeting is sent with none
 * (sk_session_greet). The 421 that closes the session is no response to the
 * command that triggered it, and a 1xx/3xx reply (354, 334) has no class in
 * RFC 3463 2, so never a code. */
static const char *reply_enhanced(const sk_session *s, int code, const char *enhanced)
{
    int cls = code / 100;
    if (cls != 2 && cls != 4 && cls != 5)
        return NULL;
    if (code != 421 && s->verb && (!strcmp(s->verb, "HELO") || !strcmp(s->verb, "EHLO")))
        return NULL;
    return enhanced;
}

__attribute__((format(printf, 4, 0))) static void
vreply(sk_session *s, int code, const char *enhanced, const char *fmt, va_list ap)
{
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    if (s->mode == SK_MODE_DEAD && (s->wants & SK_WANT_CLOSE))
        return; /* closed: nothing more is said */
    enhanced = reply_enhanced(s, code, enhanced);
    if (sk_reply_format(&s->out, code, enhanced, text) < 0) {
        /* the client does not read its replies: give up on it */
        s->close_reason = "output-overflow";
        s->wants |= SK_WANT_CLOSE;
        s->mode = SK_MODE_DEAD;
        return;
    }
    if (s->ops && s->ops->replied)
        s->ops->replied(s->ctx, s->verb, code);
}

void sk_sess_reply(sk_session *s, int code, const char *enhanced, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(s, code, enhanced, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 4, 0))) static void
refusal(sk_session *s, int code, const char *enhanced, const char *fmt, va_list ap)
{
    char text[512], clean[512], from[300], helo[300];
    vsnprintf(text, sizeof text, fmt, ap);
    sk_sess_reply(s, code, enhanced, "%s", text);
    /* The envelope so far, as Postfix's reject line: from= (the transaction's
     * sender, or the one MAIL tried), to= (the recipient RCPT tried), helo=.
     * Values are cleaned (no space, quote, backslash or control byte), so a
     * client cannot add a field or a line. */
    int is_mail = s->verb && !strcmp(s->verb, "MAIL"),
        is_rcpt = s->verb && !strcmp(s->verb, "RCPT");
    const char *f = s->in_tx                     ? sk_text_token(s->tx.mail_from, from, sizeof from)
                    : is_mail && s->cmd_addr_set ? s->cmd_addr
                                                 : NULL;
    int has_to = is_rcpt && s->cmd_addr_set;
    sk_sess_log(s, "event=reject cmd=%s code=%d enh=%s%s%s%s%s%s%s%s%s text=\"%s\"",
                s->verb ? s->verb : "-", code, enhanced ? enhanced : "-", f ? " from=<" : "",
                f ? f : "", f ? ">" : "", has_to ? " to=<" : "", has_to ? s->cmd_addr : "",
                has_to ? ">" : "", s->helo ? " helo=" : "",
                s->helo ? sk_text_token(s->helo, helo, sizeof helo) : "",
                sk_text_quoted(text, clean, sizeof clean));
}

void sk_sess_set_cmd_addr(sk_session *s, const char *addr)
{
    sk_text_token(addr, s->cmd_addr, sizeof s->cmd_addr);
    s->cmd_addr_set = 1;
}

/* One more client error: at max_errors, 421 4.7.0 and close. */
static void count_error(sk_session *s)
{
    s->errors++;
    if (s->cfg->max_errors && s->errors >= s->cfg->max_errors && !(s->wants & SK_WANT_CLOSE))
        sk_sess_close_421(s, "4.7.0", "Error: too many errors", "too-many-errors");
}

void sk_sess_reject(sk_session *s, int code, const char *enhanced, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    refusal(s, code, enhanced, fmt, ap);
    va_end(ap);
    count_error(s);
}

void sk_sess_refuse_temp(sk_session *s, int code, const char *enhanced, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    refusal(s, code, enhanced, fmt, ap);
    va_end(ap);
}

void sk_sess_sync_info(sk_session *s)
{
    s->info.peer = &s->peer;
    s->info.helo = s->helo;
    s->info.esmtp = s->esmtp;
    s->info.tls = s->tls;
    s->info.tls_version = s->tls_version;
    s->info.tls_cipher = s->tls_cipher;
    s->info.auth_user = s->auth_user;
}

/* The one line per transaction: id, sender, recipients, size, the reply
 * that ended it (or "none" and why it ended without one). */
static void log_tx(sk_session *s, const char *why)
{
    char from[300], id[40], rcpts[1200];
    size_t len = 0;
    rcpts[0] = '\0';
    for (size_t i = 0; i < s->tx.nrcpts; i++) {
        char one[300];
        sk_text_token(s->tx.rcpts[i].addr, one, sizeof one);
        int n = snprintf(rcpts + len, sizeof rcpts - len, "%s<%s>", i ? "," : "", one);
        if (n < 0 || (size_t)n >= sizeof rcpts - len) {
            /* nrcpts gives the count; mark where the list was cut */
            snprintf(rcpts + (len < sizeof rcpts - 4 ? len : sizeof rcpts - 4), 4, "...");
            break;
        }
        len += (size_t)n;
    }
    char result[16];
    snprintf(result, sizeof result, s->tx_result ? "%d" : "none", s->tx_result);
    const char *reason = s->tx_why ? s->tx_why : s->tx_result ? NULL : why;
    sk_sess_log(s, "event=message id=%s from=<%s> nrcpts=%zu rcpts=%s size=%llu result=%s%s%s",
                s->tx.id[0] ? sk_text_token(s->tx.id, id, sizeof id) : "-",
                sk_text_token(s->tx.mail_from ? s->tx.mail_from : "", from, sizeof from),
                s->tx.nrcpts, rcpts, s->data_size, result, reason ? " reason=" : "",
                reason ? reason : "");
}

void sk_sess_tx_reset(sk_session *s, const char *why)
{
    if (s->wants & SK_WANT_COMMIT)
        return; /* the shell holds &s->tx until sk_session_commit_done() */
    if (s->in_tx)
        log_tx(s, why ? why : "aborted");
    if (s->store_open) {
        if (s->ops->store_abort)
            s->ops->store_abort(s->ctx);
        s->store_open = 0;
    }
    free(s->tx.mail_from);
    for (size_t i = 0; i < s->tx.nrcpts; i++) {
        free(s->tx.rcpts[i].addr);
        if (s->tx.rcpts[i].dest && s->ops->dest_free)
            s->ops->dest_free(s->ctx, s->tx.rcpts[i].dest);
    }
    free(s->tx.rcpts);
    memset(&s->tx, 0, sizeof s->tx);
    s->in_tx = 0;
    s->refused_rcpts = 0;
    s->tx_bdat = 0;
    s->data_error = SK_DATA_OK;
    s->data_size = 0;
    sk_hop_count_init(&s->hops);
    s->tx_result = 0;
    s->tx_why = NULL;
    s->bdat_left = s->bdat_size = 0;
    s->bdat_last = 0;
    s->bdat_reply.code = 0;
}

void sk_sess_close_421(sk_session *s, const char *enhanced, const char *text, const char *reason)
{
    if (s->wants & SK_WANT_CLOSE)
        return;
    sk_sess_tx_reset(s, reason);
    sk_sasl_clear(&s->sasl);
    s->close_reason = reason;
    sk_sess_reply(s, 421, enhanced, "%s %s", s->cfg->hostname, text);
    s->wants |= SK_WANT_CLOSE;
    s->wants &= ~(unsigned)SK_IN_DATA;
    s->mode = SK_MODE_DEAD;
}

/* ---- lifecycle ---------------------------------------------------------- */

sk_session *sk_session_new(const sk_session_config *cfg, const sk_session_ops *ops, void *ctx,
                           const sk_peer *peer)
{
    sk_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->ops = ops;
    s->ctx = ctx;
    if (peer) {
        s->peer = *peer;
        s->peer_addr = peer->addr ? strdup(peer->addr) : NULL;
        s->peer_rdns = peer->rdns ? strdup(peer->rdns) : NULL;
        if ((peer->addr && !s->peer_addr) || (peer->rdns && !s->peer_rdns)) {
            free(s->peer_addr);
            free(s->peer_rdns);
            free(s);
            return NULL;
        }
    }
    s->peer.addr = s->peer_addr;
    s->peer.rdns = s->peer_rdns;
    s->tls = cfg->implicit_tls;
    s->mode = SK_MODE_COMMAND;
    sk_buf_init(&s->out, SK_OUT_MAX);
    size_t line_max = cfg->max_line > SK_SASL_LINE_MAX ? cfg->max_line : SK_SASL_LINE_MAX;
    sk_buf_init(&s->line, line_max + 8);
    sk_data_framer_init(&s->framer, SK_FRAMER_DOTS, sk_sess_data_sink, s);
    sk_sess_sync_info(s);
    return s;
}

void sk_session_free(sk_session *s)
{
    if (!s)
        return;
    s->wants &= ~(unsigned)SK_WANT_COMMIT;
    sk_sess_tx_reset(s, "disconnect");
    sk_sasl_clear(&s->sasl);
    free(s->auth_check_user); /* a check in flight holds its own copies */
    sk_buf_free(&s->out);
    if (s->line.data)
        explicit_bzero(s->line.data, s->line.cap);
    sk_buf_free(&s->line);
    free(s->helo);
    free(s->tls_version);
    free(s->tls_cipher);
    free(s->auth_user);
    free(s->peer_addr);
    free(s->peer_rdns);
    free(s);
}

void sk_session_greet(sk_session *s)
{
    sk_sess_reply(s, 220, NULL, "%s ESMTP smtpkit", s->cfg->hostname);
}

void sk_session_refuse(sk_session *s, int code, const char *enhanced, const char *text)
{
    if (s->wants & SK_WANT_CLOSE)
        return;
    sk_sess_tx_reset(s, "refused");
    sk_sess_reply(s, code, enhanced, "%s %s", s->cfg->hostname, text ? text : "");
    s->close_reason = "refused";
    s->wants |= SK_WANT_CLOSE;
    s->mode = SK_MODE_DEAD;
}

sk_buf *sk_session_output(sk_session *s)
{
    return &s->out;
}

unsigned sk_session_wants(const sk_session *s)
{
    return s->wants;
}

const sk_session_info *sk_session_get_info(const sk_session *s)
{
    return &s->info;
}

const char *sk_session_close_reason(const sk_session *s)
{
    return (s->wants & SK_WANT_CLOSE) ? s->close_reason : NULL;
}

/* ---- message data ------------------------------------------------------- */

/* The framer saw what the bare-line-end policy refuses: sets data_error.
 * "reject": any bare CR/LF. "normalise": bare line ends are stored as CRLF,
 * but a line holding only "." next to one is refused: taking it for the end
 * of data is the smuggling bug, and storing it would hand the ambiguity on
 * to whoever relays the message next. */
static int bare_error(sk_session *s)
{
    unsigned seen = s->framer.seen;
    if (s->cfg->bare_policy == SK_BARE_REJECT && seen)
        s->data_error = (seen & SK_FRAMER_SEEN_BARE_LF) ? SK_DATA_BARE_LF : SK_DATA_BARE_CR;
    else if (seen & SK_FRAMER_SEEN_LONE_DOT)
        s->data_error = SK_DATA_LONE_DOT;
    return s->data_error != SK_DATA_OK;
}

void sk_sess_data_sink(void *arg, const char *p, size_t n)
{
    sk_session *s = arg;
    if (s->data_error)
        return;
    if (bare_error(s))
        return;
    sk_hop_count_feed(&s->hops, p, n);
    if (s->cfg->max_received_headers && s->hops.count > s->cfg->max_received_headers) {
        s->data_error = SK_DATA_LOOP; /* nothing more is stored */
        return;
    }
    if (n > s->cfg->max_message_size - s->data_size) {
        s->data_error = SK_DATA_TOO_BIG;
        return;
    }
    s->data_size += n;
    if (s->ops->store_append) {
        sk_store_result r = s->ops->store_append(s->ctx, p, n);
        if (r != SK_STORE_OK)
            s->data_error = r == SK_STORE_NOSPACE ? SK_DATA_NOSPACE : SK_DATA_IOERR;
    }
}

sk_store_result sk_sess_data_open(sk_session *s)
{
    s->data_error = SK_DATA_OK;
    s->data_size = 0;
    sk_hop_count_init(&s->hops);
    memset(s->tx.id, 0, sizeof s->tx.id);
    if (!s->ops->store_begin)
        return SK_STORE_IOERR;
    sk_store_result r = s->ops->store_begin(s->ctx, &s->tx);
    if (r != SK_STORE_OK)
        return r;
    s->tx.id[sizeof s->tx.id - 1] = '\0';
    s->store_open = 1;

    sk_received_info ri = {
        .hostname = s->cfg->hostname,
        .helo = s->helo,
        .peer_addr = s->peer_addr,
        .peer_rdns = s->peer_rdns,
        .protocol = sk_received_protocol(s->esmtp, s->tls, s->auth_user != NULL, s->tx.smtputf8),
        .tls_version = s->tls ? s->tls_version : NULL,
        .tls_cipher = s->tls ? s->tls_cipher : NULL,
        .id = s->tx.id,
        .rcpt = s->tx.nrcpts == 1 ? s->tx.rcpts[0].addr : NULL,
        .mail_from = s->tx.mail_from,
        .now = time(NULL),
    };
    sk_buf hdr;
    sk_buf_init(&hdr, 4096);
    r = SK_STORE_IOERR;
    if (sk_received_write(&hdr, &ri) == 0)
        r = s->ops->store_append ? s->ops->store_append(s->ctx, hdr.data, hdr.len) : SK_STORE_OK;
    sk_buf_free(&hdr);
    if (r != SK_STORE_OK) {
        if (s->ops->store_abort)
            s->ops->store_abort(s->ctx);
        s->store_open = 0;
    }
    return r;
}

/* The reply that ends a message (or a refused BDAT chunk in a transaction):
 * the transaction's line records it, so no separate reject line; a 5xx
 * still counts towards max_errors. */
__attribute__((format(printf, 5, 6))) static void end_tx(sk_session *s, int code, const char *why,
                                                         const char *enhanced, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s->tx_result = code;
    s->tx_why = why;
    sk_sess_tx_reset(s, NULL);
    sk_sess_reply(s, code, enhanced, "%s", text);
    if (code >= 500)
        count_error(s);
}

void sk_sess_end_tx(sk_session *s, int code, const char *why, const char *enhanced,
                    const char *text)
{
    end_tx(s, code, why, enhanced, "%s", text);
}

/* A failed AUTH: its event=auth line says what happened, so no separate
 * reject line; it still counts towards max_errors. */
__attribute__((format(printf, 4, 5))) static void
auth_refused(sk_session *s, int code, const char *enhanced, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sk_sess_reply(s, code, enhanced, "%s", text);
    count_error(s);
}

void sk_sess_data_finish(sk_session *s, const char *phase)
{
    s->mode = SK_MODE_COMMAND;
    s->wants &= ~(unsigned)SK_IN_DATA;
    s->verb = phase;
    if (!s->data_error)
        bare_error(s);
    if (s->data_error) {
        sk_data_error e = s->data_error;
        switch (e) {
        case SK_DATA_TOO_BIG:
            end_tx(s, 552, "size", "5.3.4",
                   "Message size exceeds fixed maximum message size (%zu octets)",
                   s->cfg->max_message_size);
            break;
        case SK_DATA_BARE_LF:
        case SK_DATA_BARE_CR:
            end_tx(s, 550, e == SK_DATA_BARE_LF ? "bare-lf" : "bare-cr", "5.6.0",
                   "Message refused: bare <%s> in message data; lines must end with "
                   "<CR><LF>, see RFC 5321 2.3.8",
                   e == SK_DATA_BARE_LF ? "LF" : "CR");
            break;
        case SK_DATA_LONE_DOT:
            end_tx(s, 550, "lone-dot", "5.6.0",
                   "Message refused: a line holding only \".\" next to a bare <LF> or <CR> "
                   "(SMTP smuggling, RFC 5321 2.3.8)");
            break;
        case SK_DATA_LOOP: {
            const sk_enhanced_entry *loop = sk_enhanced_lookup(4, 6);
            end_tx(s, 554, "loop", "5.4.6",
                   "Message refused: %s (more than %u Received header fields)",
                   loop ? loop->name : "", s->cfg->max_received_headers);
            break;
        }
        case SK_DATA_NOSPACE:
            end_tx(s, 452, "store", "4.3.1", "Error: insufficient system storage");
            break;
        default:
            end_tx(s, 451, "store", "4.3.0", "Error: local error in processing");
            break;
        }
        return;
    }
    /* the policy (milters) sees the whole message before it is committed */
    if (s->ops->policy_check &&
        s->ops->policy_check(s->ctx, SK_POLICY_DATA, &s->info, NULL) == SK_POLICY_PENDING) {
        s->policy_step = SK_POLICY_DATA;
        s->wants |= SK_WANT_POLICY;
        return;
    }
    sk_sess_data_commit(s);
}

void sk_sess_data_commit(sk_session *s)
{
    /* Hand the message over. store_commit may call sk_session_commit_done()
     * before it returns: nothing below may touch the transaction. */
    s->wants |= SK_WANT_COMMIT;
    s->store_open = 0;
    if (s->ops->store_commit)
        s->ops->store_commit(s->ctx, &s->tx);
    else
        sk_session_commit_done(s, SK_STORE_IOERR);
}

void sk_sess_bdat_chunk_end(sk_session *s)
{
    s->mode = SK_MODE_COMMAND;
    s->wants &= ~(unsigned)SK_IN_DATA;
    s->verb = "BDAT";
    if (s->bdat_reply.code) {
        /* refused when the command arrived; its chunk is now read */
        sk_pending_reply r = s->bdat_reply;
        s->bdat_reply.code = 0;
        /* RFC 3030 2: a failed BDAT ends the transaction */
        if (s->in_tx)
            end_tx(s, r.code, "bdat", r.enhanced, "%s", r.text);
        else if (r.code >= 500)
            sk_sess_reject(s, r.code, r.enhanced, "%s", r.text);
        else
            sk_sess_refuse_temp(s, r.code, r.enhanced, "%s", r.text);
        return;
    }
    if (s->bdat_last) {
        sk_data_framer_finish(&s->framer);
        sk_sess_data_finish(s, "BDAT");
        return;
    }
    if (s->data_error) {
        sk_sess_data_finish(s, "BDAT");
        return;
    }
    sk_sess_reply(s, 250, "2.0.0", "Ok: %llu octets received", s->bdat_size);
}

/* ---- AUTH exchange ------------------------------------------------------ */

/* The reply to a completed credential check (1 valid, 0 invalid, else a
 * temporary failure): 235, 535 5.7.8 or 454 4.7.0 (RFC 4954 4 and 6).
 * raw_user is the identity as the client gave it (NULL: lost to memory
 * exhaustion, a 454 whatever the check said). */
static void auth_verdict(sk_session *s, const char *mech, const char *raw_user, int ok)
{
    char user[300];
    sk_text_token(raw_user ? raw_user : "", user, sizeof user);
    if (ok == 1 && raw_user) {
        char *u = strdup(raw_user);
        sk_sasl_clear(&s->sasl);
        if (!u) {
            sk_sess_reply(s, 454, "4.7.0", "Temporary authentication failure");
            return;
        }
        s->auth_user = u;
        sk_sess_sync_info(s);
        sk_sess_log(s, "event=auth mech=%s user=%s result=235", mech, user);
        sk_sess_reply(s, 235, "2.7.0", "Authentication successful");
        return;
    }
    sk_sasl_clear(&s->sasl);
    if (ok == 0) {
        sk_sess_log(s, "event=auth mech=%s user=%s result=535", mech, user);
        auth_refused(s, 535, "5.7.8", "Authentication credentials invalid");
    } else {
        sk_sess_log(s, "event=auth mech=%s user=%s result=454", mech, user);
        sk_sess_reply(s, 454, "4.7.0", "Temporary authentication failure");
    }
}

void sk_sess_auth_result(sk_session *s, sk_sasl_status st, const char *challenge)
{
    s->verb = "AUTH";
    const char *mech = sk_sasl_mech_name(s->sasl.mech);
    if (st == SK_SASL_CONTINUE) {
        s->mode = SK_MODE_AUTH;
        sk_sess_reply(s, 334, NULL, "%s", challenge ? challenge : "");
        return;
    }
    s->mode = SK_MODE_COMMAND;
    switch (st) {
    case SK_SASL_CANCEL: /* RFC 4954 4 and 6 */
        sk_sasl_clear(&s->sasl);
        sk_sess_log(s, "event=auth mech=%s result=501 reason=cancelled", mech);
        auth_refused(s, 501, "5.7.0", "Authentication cancelled by client");
        return;
    case SK_SASL_BAD_B64:
        sk_sasl_clear(&s->sasl);
        sk_sess_log(s, "event=auth mech=%s result=501 reason=base64", mech);
        auth_refused(s, 501, "5.5.2", "Cannot decode response: not valid base64");
        return;
    case SK_SASL_BAD_MSG:
        sk_sasl_clear(&s->sasl);
        sk_sess_log(s, "event=auth mech=%s result=501 reason=malformed", mech);
        auth_refused(s, 501, "5.5.2", "Malformed %s response", mech);
        return;
    case SK_SASL_AUTHZ:
        sk_sasl_clear(&s->sasl);
        sk_sess_log(s, "event=auth mech=%s result=535 reason=authzid", mech);
        auth_refused(s, 535, "5.7.8",
                     "Authentication credentials invalid (authorization "
                     "identity not permitted)");
        return;
    default:
        break;
    }
    int ok = s->ops->auth_check ? s->ops->auth_check(s->ctx, s->sasl.user, s->sasl.pass) : 0;
    if (ok == SK_AUTH_PENDING) {
        /* The shell checks off the loop: read nothing more until
         * sk_session_auth_done(). The password is forgotten now (the shell
         * copied it); the user name stays for the verdict. */
        /* out of memory leaves it NULL: the verdict is then a 454 */
        s->auth_check_user = strdup(s->sasl.user);
        sk_sasl_clear(&s->sasl);
        s->auth_check_mech = mech;
        s->wants |= SK_WANT_AUTH;
        return;
    }
    auth_verdict(s, mech, s->sasl.user, ok);
}

void sk_sess_auth_line(sk_session *s, const char *line, size_t len)
{
    const char *challenge = NULL;
    sk_sasl_status st = sk_sasl_step(&s->sasl, line, len, &challenge);
    sk_sess_auth_result(s, st, challenge);
}

/* ---- input -------------------------------------------------------------- */

/* How many octets a line may have before its LF (so the CR included);
 * *auth says the AUTH limit applies. */
static size_t line_cap(const sk_session *s, const char *p, size_t n, int *auth)
{
    size_t limit = s->cfg->max_line < 512 ? 512 : s->cfg->max_line;
    *auth = 0;
    if (s->mode == SK_MODE_AUTH) {
        limit = SK_SASL_LINE_MAX;
        *auth = 1;
    } else if (limit < SK_SASL_LINE_MAX) {
        /* RFC 4954 4: an AUTH command line may be 12288 octets */
        char head[5];
        size_t have = 0;
        for (; have < 5 && have < s->line.len; have++)
            head[have] = s->line.data[have];
        for (size_t k = 0; have < 5 && k < n; k++)
            head[have++] = p[k];
        if (have == 5 && strncasecmp(head, "AUTH ", 5) == 0) {
            limit = SK_SASL_LINE_MAX;
            *auth = 1;
        }
    }
    return limit - 1;
}

static void line_complete(sk_session *s)
{
    const char *l = s->line.data ? s->line.data : "";
    size_t len = s->line.len;
    int in_auth = s->mode == SK_MODE_AUTH;
    const char *problem = NULL;
    const char *enhanced = "5.5.2";
    if (s->line_overflow == 2) {
        /* RFC 4954 6 */
        problem = "Authentication Exchange line is too long";
        enhanced = "5.5.6";
    } else if (s->line_overflow)
        problem = "Error: line too long";
    else if (s->line_bare_lf)
        problem = "Syntax error: bare <LF> received; lines end with <CR><LF> (RFC 5321 2.3.8)";
    else if (len && l[len - 1] == '\r')
        len--;
    else
        problem = "Syntax error: bare <LF> received; lines end with <CR><LF> (RFC 5321 2.3.8)";
    if (!problem && memchr(l, '\r', len))
        problem = "Syntax error: bare <CR> received; lines end with <CR><LF> (RFC 5321 2.3.8)";
    if (!problem && memchr(l, '\0', len))
        problem = "Syntax error: NUL byte in command";

    if (!in_auth) {
        s->commands++;
        if (s->cfg->max_commands && s->commands > s->cfg->max_commands) {
            s->verb = "-";
            sk_sess_close_421(s, "4.7.0", "Error: too many commands", "too-many-commands");
            goto out;
        }
    }
    if (problem) {
        if (in_auth) {
            sk_sasl_clear(&s->sasl);
            s->mode = SK_MODE_COMMAND;
        }
        s->verb = in_auth || s->line_overflow == 2 ? "AUTH" : "UNKNOWN";
        sk_sess_reject(s, 500, enhanced, "%s", problem);
    } else if (in_auth) {
        sk_sess_auth_line(s, l, len);
    } else {
        sk_cmd_dispatch(s, l, len);
    }
out:
    s->line_overflow = 0;
    s->line_bare_lf = 0;
    if (s->line.data)
        explicit_bzero(s->line.data, s->line.len); /* may have held a password */
    sk_buf_clear(&s->line);
}

/* Command (or AUTH response) input: consume up to and including one LF.
 * Only CRLF ends a line (RFC 5321 2.3.8): a bare LF is noted and the line
 * goes on to the next CRLF, so "NOOP<LF>RSET<CRLF>" is one bad line with
 * one reply, never a refused line followed by a command that runs. */
static size_t line_input(sk_session *s, const char *p, size_t n)
{
    const char *lf = memchr(p, '\n', n);
    size_t take = lf ? (size_t)(lf - p) : n;
    int bare = 0;
    if (lf && !s->line_overflow) {
        char before = take ? p[take - 1] : s->line.len ? s->line.data[s->line.len - 1] : '\0';
        if (before != '\r') {
            /* keep the LF in the line and go on: the line is not over */
            s->line_bare_lf = 1;
            bare = 1;
            take++;
        }
    }
    if (!s->line_overflow && take) {
        int auth;
        size_t cap = line_cap(s, p, take, &auth);
        if (take > cap || s->line.len > cap - take || sk_buf_append(&s->line, p, take) < 0) {
            s->line_overflow = auth ? 2 : 1; /* discard up to the LF, then answer once */
            sk_buf_clear(&s->line);
        }
    }
    if (bare)
        return take;
    if (!lf)
        return n;
    size_t used = take + 1;
    s->feed_left = n - used;
    line_complete(s);
    s->feed_left = 0;
    return used;
}

static size_t data_input(sk_session *s, const char *p, size_t n)
{
    int done = 0;
    size_t used = sk_data_framer_feed(&s->framer, p, n, &done);
    if (done)
        sk_sess_data_finish(s, "DATA-END");
    return used;
}

static size_t bdat_input(sk_session *s, const char *p, size_t n)
{
    size_t k = s->bdat_left < n ? (size_t)s->bdat_left : n;
    if (!s->bdat_reply.code && !s->data_error) {
        int done;
        sk_data_framer_feed(&s->framer, p, k, &done);
    }
    s->bdat_left -= k;
    if (s->bdat_left == 0)
        sk_sess_bdat_chunk_end(s);
    return k;
}

size_t sk_session_feed(sk_session *s, const char *p, size_t n)
{
    size_t i = 0;
    const unsigned stop =
        SK_WANT_CLOSE | SK_WANT_TLS | SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_POLICY;
    while (i < n && !(s->wants & stop)) {
        switch (s->mode) {
        case SK_MODE_DATA:
            i += data_input(s, p + i, n - i);
            break;
        case SK_MODE_BDAT:
            i += bdat_input(s, p + i, n - i);
            break;
        case SK_MODE_COMMAND:
        case SK_MODE_AUTH:
            i += line_input(s, p + i, n - i);
            break;
        case SK_MODE_DEAD:
            return i;
        }
    }
    return i;
}

/* ---- events from the shell ---------------------------------------------- */

void sk_session_tls_started(sk_session *s, const char *version, const char *cipher)
{
    /* RFC 3207 4.2: forget everything learnt before TLS */
    s->wants &= ~(unsigned)SK_WANT_TLS;
    sk_sess_tx_reset(s, "starttls");
    sk_sasl_clear(&s->sasl);
    free(s->helo);
    s->helo = NULL;
    s->esmtp = 0;
    free(s->auth_user);
    s->auth_user = NULL;
    free(s->tls_version);
    free(s->tls_cipher);
    s->tls_version = version ? strdup(version) : NULL;
    s->tls_cipher = cipher ? strdup(cipher) : NULL;
    s->tls = 1;
    if (s->mode != SK_MODE_DEAD)
        s->mode = SK_MODE_COMMAND;
    s->line_overflow = 0;
    sk_buf_clear(&s->line);
    sk_sess_sync_info(s);
    char v[64], c[128];
    sk_sess_log(s, "event=tls version=%s cipher=%s",
                sk_text_token(version ? version : "-", v, sizeof v),
                sk_text_token(cipher ? cipher : "-", c, sizeof c));
}

void sk_session_commit_done(sk_session *s, sk_store_result r)
{
    sk_store_outcome out = {.result = r};
    sk_session_commit_outcome(s, &out);
}

void sk_session_commit_outcome(sk_session *s, const sk_store_outcome *out)
{
    if (!(s->wants & SK_WANT_COMMIT))
        return;
    s->wants &= ~(unsigned)SK_WANT_COMMIT;
    sk_store_result r = out ? out->result : SK_STORE_IOERR;
    /* the destination's own reply (LMTP), when it is one of the result's
     * class; else the store's */
    int cls = r == SK_STORE_DEFERRED ? 4 : r == SK_STORE_REFUSED ? 5 : 0;
    int theirs = cls && out->code / 100 == cls && (out->code / 10) % 10 <= 5 &&
                 out->enhanced[0] == '0' + cls && out->enhanced[1] == '.';
    /* a code RFC 5321 does not list after the data (553 to a RCPT, say)
     * keeps its class, enhanced code and text: 451 or 554 */
    int code = theirs && !sk_registry_allows(out->code, "DATA-END") ? (cls == 4 ? 451 : 554)
               : theirs                                             ? out->code
               : r == SK_STORE_OK                                   ? 250
               : r == SK_STORE_NOSPACE                              ? 452
               : r == SK_STORE_REFUSED                              ? 554
                                                                    : 451;
    s->verb = s->tx_bdat ? "BDAT" : "DATA-END";
    s->tx_result = code;
    /* durable, but the client left before it could hear so: it will
     * probably send the message again (RFC 5321 6.1, duplicates) */
    int gone = s->mode == SK_MODE_DEAD && (s->wants & SK_WANT_CLOSE);
    s->tx_why = r == SK_STORE_DEFERRED  ? "deferred"
                : r == SK_STORE_REFUSED ? "refused"
                : r != SK_STORE_OK      ? "commit"
                : gone                  ? "client-gone"
                                        : NULL;
    char id[40];
    sk_text_token(s->tx.id, id, sizeof id);
    sk_sess_tx_reset(s, NULL);
    if (theirs) {
        char enh[12], text[sizeof out->text];
        memcpy(enh, out->enhanced, sizeof enh);
        enh[sizeof enh - 1] = '\0';
        /* one line: the formatter masks control bytes, a newline would
         * start another line */
        size_t k = 0;
        for (; k + 1 < sizeof text && out->text[k]; k++)
            text[k] = out->text[k] == '\n' || out->text[k] == '\r' ? ' ' : out->text[k];
        text[k] = '\0';
        sk_sess_reply(s, code, enh, "%s", text);
    } else if (r == SK_STORE_OK) {
        sk_sess_reply(s, 250, "2.0.0", "Ok: queued as %s", id);
    } else if (r == SK_STORE_NOSPACE) {
        sk_sess_reply(s, 452, "4.3.1", "Error: insufficient system storage");
    } else if (r == SK_STORE_REFUSED) {
        sk_sess_reply(s, 554, "5.0.0", "Error: transaction failed");
    } else {
        sk_sess_reply(s, 451, "4.3.0", "Error: local error in processing");
    }
}

void sk_session_auth_done(sk_session *s, int result)
{
    if (!(s->wants & SK_WANT_AUTH))
        return;
    s->wants &= ~(unsigned)SK_WANT_AUTH;
    char *u = s->auth_check_user;
    s->auth_check_user = NULL;
    s->verb = "AUTH";
    if (result == SK_AUTH_PENDING)
        result = -1; /* not a verdict */
    if (s->mode == SK_MODE_DEAD || (s->wants & SK_WANT_CLOSE)) {
        /* the client left (or the session closed) while its credentials were checked: log what
         * the check said, reply to nobody, never become authenticated */
        char user[300];
        sk_text_token(u ? u : "", user, sizeof user);
        sk_sess_log(s, "event=auth mech=%s user=%s result=%d reason=client-gone",
                    s->auth_check_mech ? s->auth_check_mech : "-", user,
                    result == 1   ? 235
                    : result == 0 ? 535
                                  : 454);
    } else {
        auth_verdict(s, s->auth_check_mech ? s->auth_check_mech : "-", u, result);
    }
    free(u);
}

void sk_session_timeout(sk_session *s)
{
    s->verb = "-";
    sk_sess_close_421(s, "4.4.2", "Error: timeout exceeded", "timeout");
}

void sk_session_shutdown(sk_session *s)
{
    s->verb = "-";
    sk_sess_close_421(s, "4.3.2", "Service shutting down", "shutdown");
}

void sk_session_disconnected(sk_session *s)
{
    /* a commit in flight keeps its transaction (the shell still holds it);
     * sk_session_commit_done() then logs it with reason=client-gone */
    sk_sess_tx_reset(s, "disconnect");
    sk_sasl_clear(&s->sasl);
    if (!(s->wants & SK_WANT_CLOSE))
        s->close_reason = "disconnect";
    s->mode = SK_MODE_DEAD;
    s->wants |= SK_WANT_CLOSE;
}
