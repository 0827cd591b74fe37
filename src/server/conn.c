/*
 * conn.c - one client connection: bytes between the socket (a libevent
 * bufferevent) and the protocol core (sk_session), timers, limits, and the
 * single place where every connection ends.
 *
 * - Reading: every byte read is fed to sk_session_feed(). The session may
 *   stop consuming (SK_WANT_COMMIT while a message is made durable,
 *   SK_WANT_CLOSE, SK_WANT_TLS); the unconsumed bytes stay in the input
 *   evbuffer, reading stops, and processing resumes where it stopped when
 *   the condition clears (pipelined commands after the data, RFC 2920).
 * - Memory: the input evbuffer has a high watermark (limits.input_buffer),
 *   so a client can never make it grow further; when unsent replies exceed
 *   limits.output_buffer (a client that pipelines without reading), the
 *   connection stops reading until the output drains.
 * - Timeouts (RFC 5321 4.5.3.2): the command timeout while waiting for a
 *   command, the data timeout while reading message data; either ends in
 *   sk_session_timeout() (421 4.4.2). A client that does not read our
 *   replies for the command timeout is dropped.
 * - Deadlines: timeouts restart with every octet, so a client trickling
 *   one octet every few seconds would hold its connection for ever. From
 *   the first octet after our last reply, a command line must be complete
 *   within limits.command_deadline and a message's data (or one BDAT
 *   chunk) within limits.message_deadline; else 421 4.4.2 as for a timeout.
 * - Closing: after our last reply (221, 421) our side is shut down and what
 *   the client still sends is read and dropped for a moment (a lingering
 *   close, as nginx does): closing with unread input would make the kernel
 *   send a reset, which can destroy the 421 before the client reads it.
 * - Limits: over the total or per-address connection limit, the session
 *   answers 421 4.7.0 and the connection closes. IPv6 clients are counted
 *   per /64, the block one subscriber usually holds.
 * - One error funnel: timeout, EOF, I/O error, QUIT and shutdown all end in
 *   conn_end(), which closes the socket and, once no commit is in flight
 *   for this connection, conn_finish() logs the counters and frees.
 * - TLS: after STARTTLS's 220 has been written (RFC 3207 4.2), whatever
 *   plaintext the client sent behind the command is thrown away
 *   (CVE-2011-0411) and the socket moves to an OpenSSL bufferevent that
 *   accepts the handshake; implicit-TLS listeners (RFC 8314 3.3) start with
 *   one and greet only after the handshake. A failed handshake ends only
 *   that connection. The OpenSSL bufferevent sits directly on the socket
 *   rather than on top of the plaintext one: "output drained" then means
 *   "in the kernel", so the last reply (221, 421) is never lost at close.
 * - AUTH (RFC 4954): the password is hashed on a worker thread
 *   (SK_WANT_AUTH: the session consumes nothing meanwhile, like during a
 *   commit); a connection that ends while its check is in flight is freed
 *   only by the check's completion. A failed AUTH's reply is then held back
 *   for auth_failure_delay_ms by a timer started after the verdict (the
 *   loop never sleeps), reading pauses meanwhile, and a connection over its
 *   failure limit then gets 421 4.7.0 and is closed.
 */
#include "server/conn.h"

#include "delivery/agent.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "server/log.h"
#include "server/milter.h"
#include "server/tls.h"

static void conn_process(sk_conn *c);
static void conn_settle(sk_conn *c);
static void conn_commit_result(sk_conn *c, const sk_store_outcome *out);

sk_conn *sk_conn_next(const sk_conn *c)
{
    return c->next;
}

static long long elapsed_ms(const sk_conn *c)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - c->started.tv_sec) * 1000 +
           (now.tv_nsec - c->started.tv_nsec) / 1000000;
}

/* Free everything. Only when no commit or auth callback can still arrive. */
static void conn_finish(sk_conn *c)
{
    sk_server *srv = c->srv;
    /* why it ends: what the shell saw (timeout, I/O error, limit...), else
     * what the session decided (quit, too many errors...) */
    const char *reason = c->reason;
    if (!reason || !strcmp(reason, "closed"))
        reason = sk_session_close_reason(c->session);
    if (!reason)
        reason = "closed";
    /* the milters first: an end-of-message exchange reads the spooled message */
    sk_milters_free(c->milters);
    c->milters = NULL;
    c->policy_pending = 0;
    /* Aborts a message still open (disconnect mid-DATA): nothing stored. */
    sk_session_disconnected(c->session);
    if (c->msg) {
        sk_store_abort(c->msg);
        c->msg = NULL;
    }
    sk_metrics_session(&srv->metrics, c->tls_version);
    sk_log(LOG_INFO,
           "event=disconnect conn=%llu peer=%s reason=%s last_reply=%d duration_ms=%lld "
           "bytes_in=%llu bytes_out=%llu messages=%u failed_messages=%u",
           c->id, c->addr, reason, c->last_code, elapsed_ms(c), c->bytes_in, c->bytes_out,
           c->messages, c->failed_messages);
    sk_session_free(c->session);
    if (c->timer)
        event_free(c->timer);
    if (c->auth_timer)
        event_free(c->auth_timer);
    if (c->counted)
        sk_peer_count_dec(srv->per_ip, c->limit_key);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    free(c);
    sk_server_conn_gone(srv);
}

/* The error funnel: every end of a connection comes here. The socket closes
 * now; the memory goes when the commit queue no longer refers to it. */
static void conn_end(sk_conn *c, const char *reason)
{
    if (c->ended)
        return;
    c->ended = 1;
    if (!c->reason || strcmp(reason, "closed") != 0)
        c->reason = reason;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->commit_pending || c->auth_pending) {
        /* the message's log line will say the client did not hear the 250 */
        sk_session_disconnected(c->session);
        return; /* sk_conn_commit_done() or sk_conn_auth_done() finishes */
    }
    conn_finish(c);
}

/* Move the session's replies to the socket's output buffer. */
static void conn_flush(sk_conn *c)
{
    sk_buf *o = sk_session_output(c->session);
    if (!o->len || c->auth_hold)
        return; /* a failed AUTH's reply waits for its timer */
    /* remember the code of the last reply line, for the disconnect log */
    size_t start = o->len >= 2 ? o->len - 2 : 0;
    while (start > 0 && o->data[start - 1] != '\n')
        start--;
    if (o->len - start >= 3 && o->data[start] >= '1' && o->data[start] <= '5')
        c->last_code = (o->data[start] - '0') * 100 + (o->data[start + 1] - '0') * 10 +
                       (o->data[start + 2] - '0');
    if (c->bev && !c->ended) {
        if (bufferevent_write(c->bev, o->data, o->len) == 0)
            c->bytes_out += o->len;
    }
    sk_buf_consume(o, o->len);
}

/* TLS states of a connection. */
enum { TLS_NONE = 0, TLS_FLUSHING_220, TLS_HANDSHAKE, TLS_UP };

/* A TLS handshake takes a round trip or two: a client that has not
 * finished one in this time is not going to (and holds a slot). */
#define TLS_HANDSHAKE_TIMEOUT 30

/* Arm the command or the data timeout (RFC 5321 4.5.3.2), or the shorter
 * handshake timeout while TLS is being negotiated. */
static void conn_set_timeouts(sk_conn *c, int in_data)
{
    const sk_config *cfg = c->srv->cfg;
    struct timeval rt = {.tv_sec = in_data ? cfg->data_timeout : cfg->command_timeout};
    struct timeval wt = {.tv_sec = cfg->command_timeout};
    if (c->tls_state == TLS_HANDSHAKE && rt.tv_sec > TLS_HANDSHAKE_TIMEOUT)
        rt.tv_sec = wt.tv_sec = TLS_HANDSHAKE_TIMEOUT;
    bufferevent_set_timeouts(c->bev, &rt, &wt);
    c->in_data_timeouts = in_data;
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* Make `bev` the connection's transport: callbacks, the input cap
 * (watermark) and the timeouts. Used at accept, and by conn_start_tls() for
 * the OpenSSL bufferevent that takes over the socket. */
static void conn_attach(sk_conn *c, struct bufferevent *bev)
{
    c->bev = bev;
    bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(bev, EV_READ, 0, c->srv->cfg->input_buffer);
    conn_set_timeouts(c, (sk_session_wants(c->session) & SK_IN_DATA) != 0);
}

/* An OpenSSL bufferevent accepting a handshake on fd, or NULL. */
static struct bufferevent *tls_bev_new(sk_conn *c, evutil_socket_t fd)
{
    if (!c->srv->tls)
        return NULL;
    SSL *ssl = sk_tls_server_new_ssl(c->srv->tls);
    if (!ssl)
        return NULL;
    /* On failure libevent frees ssl itself (BEV_OPT_CLOSE_ON_FREE). */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        c->srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev) /* a client closing without close_notify is an EOF, not an error */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* STARTTLS (RFC 3207): the session has queued its 220 and stopped reading.
 * Once the 220 has left, hand the socket to OpenSSL. Returns 0 (waiting for
 * the 220 to drain, or handshake started), -1 if TLS cannot start. */
static int conn_start_tls(sk_conn *c)
{
    if (!c->srv->tls || !c->bev || c->tls_state >= TLS_HANDSHAKE)
        return -1;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        c->tls_state = TLS_FLUSHING_220; /* conn_write_cb comes back here */
        return 0;
    }
    /* Anything read after STARTTLS is dropped (CVE-2011-0411); what is
     * still in the kernel becomes input to the handshake. */
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    bufferevent_setfd(c->bev, -1); /* keep the socket open ... */
    bufferevent_free(c->bev);      /* ... when the plaintext side goes */
    c->bev = tls_bev_new(c, fd);
    if (!c->bev) {
        evutil_closesocket(fd);
        return -1;
    }
    c->tls_state = TLS_HANDSHAKE;
    conn_attach(c, c->bev);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

/* The greeting, after the milters' connect step when the listener has
 * milters (sk_conn_milter_connected() then greets or refuses). */
static void conn_greet(sk_conn *c)
{
    if ((c->milters = sk_milters_new(c)) != NULL) {
        c->policy_pending = 1;
        sk_milters_connect(c->milters);
    } else {
        sk_session_greet(c->session);
    }
}

/* The handshake finished: tell the session (RFC 3207 4.2: it forgets the
 * EHLO and starts over; it logs version and cipher), greet on an
 * implicit-TLS listener (RFC 8314 3.3). */
static void conn_tls_up(sk_conn *c)
{
    c->tls_state = TLS_UP;
    conn_set_timeouts(c, 0); /* back from the handshake timeout */
    const char *version, *cipher;
    sk_tls_describe(bufferevent_openssl_get_ssl(c->bev), &version, &cipher);
    c->tls_version = version;
    sk_session_tls_started(c->session, version, cipher);
    if (c->lst->cfg->session.implicit_tls && !(sk_session_wants(c->session) & SK_WANT_CLOSE))
        conn_greet(c);
    conn_flush(c);
    conn_process(c);
}

/* OpenSSL's reasons for a failed connection, as one line. */
static void tls_errors(struct bufferevent *bev, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t used = 0;
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        const char *r = ERR_reason_error_string(e);
        if (!r)
            continue; /* a system error: nothing OpenSSL can name */
        int n = snprintf(out + used, outlen - used, "%s%s", used ? "; " : "", r);
        if (n < 0 || (size_t)n >= outlen - used)
            break;
        used += (size_t)n;
    }
    if (!out[0])
        snprintf(out, outlen, "connection closed");
    ERR_clear_error();
}

/* The reply to a failed AUTH may go now (RFC 4954 4: the delay makes
 * guessing slow); after too many failures, 421 4.7.0 and close. */
static void conn_auth_release(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_conn *c = arg;
    c->auth_hold = 0;
    if (c->ended)
        return;
    if (c->auth_close) {
        c->reason = "auth-failures";
        sk_log(LOG_NOTICE, "event=auth-limit conn=%llu peer=%s failures=%u", c->id, c->addr,
               c->auth.failures);
        sk_session_refuse(c->session, 421, "4.7.0", "Too many authentication failures");
    }
    conn_flush(c);
    conn_process(c);
}

/* Hold the replies of a failed AUTH; 0, or -1 (no timer: answer now). */
static int conn_auth_hold(sk_conn *c)
{
    if (!c->auth_timer)
        c->auth_timer = evtimer_new(c->srv->base, conn_auth_release, c);
    struct timeval tv = {.tv_sec = c->auth_delay_ms / 1000,
                         .tv_usec = (c->auth_delay_ms % 1000) * 1000};
    if (!c->auth_timer || evtimer_add(c->auth_timer, &tv) != 0) {
        c->auth_hold = 0;
        return -1;
    }
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ);
    return 0;
}

/* ---- deadlines and the lingering close --------------------------------- */

#define LINGER_SECONDS 2 /* how long a closed connection drains the client's input */

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

static void conn_timer_set(sk_conn *c, unsigned seconds)
{
    if (!c->timer)
        c->timer = evtimer_new(c->srv->base, conn_timer_cb, c);
    struct timeval tv = {.tv_sec = seconds};
    if (c->timer)
        evtimer_add(c->timer, &tv);
}

static void conn_deadline_clear(sk_conn *c)
{
    if (c->deadline_armed && c->timer)
        evtimer_del(c->timer);
    c->deadline_armed = 0;
}

/* After feeding the session: a reply (or a pause on our side) ends the
 * timing; bytes that made no reply start it, once per command or message.
 * Moving from a command line into message data (BDAT) restarts it. */
static void conn_deadline_note(sk_conn *c, size_t used, int replied)
{
    unsigned w = sk_session_wants(c->session);
    if (replied ||
        (w & (SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_POLICY | SK_WANT_CLOSE | SK_WANT_TLS))) {
        conn_deadline_clear(c);
        return;
    }
    int in_data = (w & SK_IN_DATA) != 0;
    if (!used || (c->deadline_armed && c->deadline_in_data == in_data))
        return;
    unsigned limit = in_data ? c->srv->cfg->message_deadline : c->srv->cfg->command_deadline;
    conn_deadline_clear(c);
    if (limit == 0)
        return;
    c->deadline_armed = 1;
    c->deadline_in_data = in_data;
    conn_timer_set(c, limit);
}

static void conn_linger_read_cb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void conn_linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what; /* EOF, error or timeout: the client is done */
    sk_conn *c = arg;
    conn_end(c, c->reason ? c->reason : "closed");
}

/* Our last reply has left: shut our side, drain the client's input until
 * it closes too or LINGER_SECONDS pass, then end. No lingering for a
 * client that closed its side already, nor after the 221 to a QUIT with
 * nothing unread (the client says no more, RFC 5321 4.1.1.10). */
static void conn_close(sk_conn *c)
{
    const char *reason = c->reason ? c->reason : "closed";
    conn_deadline_clear(c);
    evutil_socket_t fd = c->bev ? bufferevent_getfd(c->bev) : -1;
    struct evbuffer *in = c->bev ? bufferevent_get_input(c->bev) : NULL;
    int unread = 0;
    if (fd >= 0 && (ioctl(fd, FIONREAD, &unread) != 0 || unread < 0))
        unread = 1;
    if (in && evbuffer_get_length(in) > 0)
        unread = 1;
    if (c->peer_eof || c->lingering || fd < 0 || (c->last_code == 221 && !unread) ||
        shutdown(fd, SHUT_WR) != 0) {
        conn_end(c, reason);
        return;
    }
    c->lingering = 1;
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_setcb(c->bev, conn_linger_read_cb, NULL, conn_linger_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    bufferevent_enable(c->bev, EV_READ);
    conn_timer_set(c, LINGER_SECONDS);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_conn *c = arg;
    c->deadline_armed = 0;
    if (c->ended)
        return;
    if (c->lingering) {
        conn_end(c, c->reason ? c->reason : "closed");
        return;
    }
    /* our side is busy (a commit, a password check) or already closing:
     * not the client's fault */
    if (c->closing || c->commit_pending || c->auth_pending || c->policy_pending ||
        (sk_session_wants(c->session) & (SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_CLOSE)))
        return;
    c->reason = "deadline";
    sk_session_timeout(c->session);
    conn_flush(c);
    conn_settle(c);
}

/* Should the session get its shutdown 421 now? Between messages, yes;
 * while a message is being received or committed, only after the grace
 * time (and never during a commit). */
static void conn_maybe_shutdown(sk_conn *c)
{
    if (!c->srv->shutting_down || c->shutdown_sent || c->closing || c->ended)
        return;
    unsigned w = sk_session_wants(c->session);
    if (c->policy_pending || (w & (SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_POLICY | SK_WANT_CLOSE)))
        return;
    if ((w & SK_IN_DATA) && !c->srv->grace_over)
        return;
    c->shutdown_sent = 1;
    c->reason = "shutdown";
    sk_session_shutdown(c->session);
    conn_flush(c);
}

/* After processing: decide whether to read, wait or close. May free c. */
static void conn_settle(sk_conn *c)
{
    if (c->ended)
        return;
    if (c->auth_hold || c->tls_state == TLS_FLUSHING_220 || c->tls_state == TLS_HANDSHAKE)
        return; /* the timer, conn_write_cb or the handshake moves on */
    unsigned w = sk_session_wants(c->session);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (w & SK_WANT_CLOSE) {
        c->closing = 1;
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_close(c);
        return; /* else conn_write_cb closes it when the replies are sent */
    }
    if (w & SK_WANT_TLS) {
        /* RFC 3207 5: nothing the client sent before the handshake may be
         * used after it (CVE-2011-0411). */
        evbuffer_drain(in, evbuffer_get_length(in));
        if (conn_start_tls(c) < 0) {
            sk_log(LOG_ERR, "event=tls-unavailable conn=%llu peer=%s", c->id, c->addr);
            conn_end(c, "tls-unavailable");
        }
        return;
    }
    if ((w & (SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_POLICY)) || c->policy_pending) {
        /* Keep reading (into the capped input buffer) while the message is
         * made durable or the password checked, so a client that resets
         * now is noticed now (and the message's log line says it never
         * heard its 250). */
        if (!c->peer_eof)
            bufferevent_enable(c->bev, EV_READ);
        return;
    }
    if (c->out_blocked) {
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    if (c->peer_eof) {
        /* The client sent everything it will send and all of it is
         * consumed: finish sending our replies, then close. */
        c->closing = 1;
        if (!c->reason)
            c->reason = "eof";
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_end(c, c->reason);
        return;
    }
    int in_data = (w & SK_IN_DATA) != 0;
    if (in_data != c->in_data_timeouts)
        conn_set_timeouts(c, in_data);
    bufferevent_enable(c->bev, EV_READ);
}

/* Feed buffered input to the session until it is consumed or the session
 * stops reading. May free c. */
static void conn_process(sk_conn *c)
{
    if (c->ended || c->closing || c->auth_hold || c->policy_pending)
        return;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (;;) {
        conn_maybe_shutdown(c);
        unsigned w = sk_session_wants(c->session);
        if (w & (SK_WANT_CLOSE | SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_POLICY | SK_WANT_TLS))
            break;
        if (evbuffer_get_length(out) >= c->srv->cfg->output_buffer) {
            c->out_blocked = 1;
            break;
        }
        struct evbuffer_iovec v;
        if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t before = sk_session_output(c->session)->len;
        size_t used = sk_session_feed(c->session, v.iov_base, v.iov_len);
        if (used > v.iov_len)
            used = v.iov_len; /* defensive: never drain what was not there */
        c->bytes_in += used;
        c->srv->metrics.bytes_received += used;
        evbuffer_drain(in, used);
        conn_deadline_note(c, used, sk_session_output(c->session)->len > before);
        if (c->auth_hold && conn_auth_hold(c) == 0)
            return; /* conn_auth_release() goes on */
        conn_flush(c);
        if (c->policy_pending)
            break; /* sk_conn_policy_done() goes on */
        if (c->commit_failed_now) {
            /* the commit queue refused the message: answer at once */
            c->commit_failed_now = 0;
            conn_commit_result(c, &(sk_store_outcome){.result = SK_STORE_IOERR});
            conn_flush(c);
            continue;
        }
        if (used < v.iov_len &&
            !(sk_session_wants(c->session) &
              (SK_WANT_CLOSE | SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_POLICY | SK_WANT_TLS))) {
            /* The contract says this cannot happen; stop rather than spin. */
            sk_log(LOG_ERR, "event=bug conn=%llu what=session-stalled", c->id);
            c->reason = "internal-error";
            conn_end(c, "internal-error");
            return;
        }
    }
    conn_flush(c);
    conn_settle(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_process(arg);
}

/* The output buffer has drained completely. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    sk_conn *c = arg;
    if (c->closing) {
        conn_close(c);
        return;
    }
    if (c->tls_state == TLS_FLUSHING_220) {
        /* the 220 to STARTTLS has left: now the handshake */
        if (conn_start_tls(c) < 0) {
            sk_log(LOG_ERR, "event=tls-unavailable conn=%llu peer=%s", c->id, c->addr);
            conn_end(c, "tls-unavailable");
        }
        return;
    }
    if (c->out_blocked) {
        c->out_blocked = 0;
        conn_process(c);
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    sk_conn *c = arg;
    if (c->tls_state == TLS_HANDSHAKE) {
        if (what & BEV_EVENT_CONNECTED) {
            conn_tls_up(c);
            return;
        }
        /* garbage instead of a ClientHello, a client that gave up, no
         * common protocol: this connection only */
        char why[256];
        tls_errors(bev, why, sizeof why);
        const char *reason = (what & BEV_EVENT_TIMEOUT) ? "tls-handshake-timeout"
                             : (what & BEV_EVENT_EOF)   ? "tls-handshake-eof"
                                                        : "tls-handshake-failed";
        sk_log(LOG_NOTICE, "event=%s conn=%llu peer=%s error=\"%s\"", reason, c->id, c->addr,
               (what & BEV_EVENT_TIMEOUT) ? "no handshake in time" : why);
        conn_end(c, reason);
        return;
    }
    if ((what & BEV_EVENT_ERROR) && c->tls_state == TLS_UP) {
        char why[256];
        tls_errors(bev, why, sizeof why);
        sk_log(LOG_INFO, "event=io-error conn=%llu peer=%s error=\"TLS: %s\"", c->id, c->addr, why);
        conn_end(c, "io-error");
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        sk_log(LOG_INFO, "event=io-error conn=%llu peer=%s error=\"%s\"", c->id, c->addr,
               evutil_socket_error_to_string(e));
        conn_end(c, "io-error");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if ((what & BEV_EVENT_WRITING) || c->closing) {
            conn_end(c, "write-timeout"); /* the client does not read our replies */
            return;
        }
        if (c->commit_pending || c->auth_pending || c->policy_pending ||
            (sk_session_wants(c->session) & (SK_WANT_COMMIT | SK_WANT_AUTH | SK_WANT_POLICY)))
            return; /* our side, not the client, is slow; reading resumes after it */
        c->reason = "timeout";
        sk_session_timeout(c->session);
        conn_flush(c);
        conn_settle(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->peer_eof = 1;
        if (what & BEV_EVENT_WRITING) {
            /* our replies cannot be sent any more (a TLS peer that reset
             * after a dirty shutdown): nothing left to wait for */
            conn_end(c, c->reason ? c->reason : "eof");
            return;
        }
        if (c->closing)
            return; /* still sending our last replies */
        conn_process(c);
    }
}

/* Over the total or per-address limit? Sets the text for the 421. */
static const char *over_limit(sk_conn *c, unsigned per_ip)
{
    const sk_config *cfg = c->srv->cfg;
    if (per_ip == 0)
        return "Out of memory, try again later";
    if (c->srv->nconns > cfg->max_connections)
        return "Too many connections, try again later";
    if (per_ip > cfg->max_connections_per_ip)
        return "Too many connections from your address, try again later";
    return NULL;
}

void sk_conn_set_peer(sk_conn *c, int family, const void *addr, unsigned port)
{
    c->port = port;
    if (family == AF_INET6) {
        inet_ntop(AF_INET6, addr, c->addr, sizeof c->addr);
        /* One IPv6 client usually owns a whole /64: count it as one. */
        struct in6_addr net;
        memcpy(&net, addr, sizeof net);
        memset(net.s6_addr + 8, 0, 8);
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &net, buf, sizeof buf);
        snprintf(c->limit_key, sizeof c->limit_key, "%s/64", buf);
    } else if (family == AF_INET) {
        inet_ntop(AF_INET, addr, c->addr, sizeof c->addr);
        snprintf(c->limit_key, sizeof c->limit_key, "%s", c->addr);
    } else {
        snprintf(c->addr, sizeof c->addr, "unknown");
        snprintf(c->limit_key, sizeof c->limit_key, "unknown");
    }
}

void sk_conn_discard(sk_conn *c)
{
    sk_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    free(c);
    sk_server_conn_gone(srv);
}

void sk_conn_accept(sk_listener *l, int fd, const struct sockaddr *sa, int socklen)
{
    sk_server *srv = l->srv;
    sk_conn *c = calloc(1, sizeof *c);
    if (!c) {
        sk_log(LOG_ERR, "event=accept-failed error=\"out of memory\"");
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->lst = l;
    c->id = ++srv->next_conn_id;
    srv->metrics.connections_total++;
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    if (sa->sa_family == AF_INET6 && (size_t)socklen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        sk_conn_set_peer(c, AF_INET6, &s6->sin6_addr, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET && (size_t)socklen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        sk_conn_set_peer(c, AF_INET, &s4->sin_addr, ntohs(s4->sin_port));
    } else {
        sk_conn_set_peer(c, AF_UNSPEC, NULL, 0);
    }

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    /* Linked and counted from the start, so the connection limit and a
     * shutdown see connections still sending their PROXY header. */
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (l->cfg->proxy_protocol) {
        /* the client's address comes first, then the session */
        sk_proxy_accept_start(c, fd);
        return;
    }
    sk_conn_begin(c, fd);
}

void sk_conn_begin(sk_conn *c, int fd)
{
    sk_server *srv = c->srv;
    sk_listener *l = c->lst;
    c->peer.addr = c->addr;
    c->peer.rdns = NULL;
    c->peer.trusted = sk_policy_trusted(srv->policy, c->addr);

    if (l->cfg->session.implicit_tls) {
        /* RFC 8314 3.3: TLS from the first byte; the greeting follows the
         * handshake (conn_tls_up). */
        c->bev = tls_bev_new(c, fd);
        c->tls_state = TLS_HANDSHAKE;
    } else {
        c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev) {
        sk_log(LOG_ERR, "event=accept-failed peer=%s error=\"cannot create buffer\"", c->addr);
        evutil_closesocket(fd);
        sk_conn_discard(c);
        return;
    }
    c->session = sk_session_new(&l->cfg->session, &sk_conn_ops, c, &c->peer);
    if (!c->session) {
        sk_log(LOG_ERR, "event=accept-failed peer=%s error=\"out of memory\"", c->addr);
        bufferevent_free(c->bev);
        c->bev = NULL;
        sk_conn_discard(c);
        return;
    }
    unsigned per_ip = sk_peer_count_inc(srv->per_ip, c->limit_key);
    c->counted = per_ip > 0;

    conn_attach(c, c->bev);

    sk_log(LOG_INFO, "event=connect conn=%llu peer=%s port=%u listener=%s trusted=%d conns=%u%s%s",
           c->id, c->addr, c->port, l->label, c->peer.trusted, srv->nconns,
           c->via[0] ? " proxy=" : "", c->via);

    const char *refuse = over_limit(c, per_ip);
    if (refuse) {
        sk_metrics_refused(&srv->metrics, per_ip == 0 ? SK_REFUSED_MEMORY
                                          : srv->nconns > srv->cfg->max_connections
                                              ? SK_REFUSED_CONNECTIONS
                                              : SK_REFUSED_CONNECTIONS_PER_IP);
        c->reason = "limit";
        sk_session_refuse(c->session, 421, "4.7.0", refuse);
    } else if (c->tls_state == TLS_HANDSHAKE) {
        /* implicit TLS: the handshake first, the greeting after it */
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        return;
    } else {
        conn_greet(c);
    }
    conn_flush(c);
    bufferevent_enable(c->bev, EV_WRITE);
    conn_settle(c);
}

void sk_conn_shutdown(sk_conn *c)
{
    if (c->proxy) {
        sk_proxy_accept_cancel(c, "shutdown"); /* no session to say 421 in */
        return;
    }
    if (c->ended || c->closing)
        return;
    if (c->commit_pending || c->auth_pending || c->policy_pending)
        return; /* sk_conn_commit_done() / sk_conn_auth_done() go on with the shutdown */
    if (c->tls_state == TLS_FLUSHING_220 || c->tls_state == TLS_HANDSHAKE) {
        /* no session to end politely yet, and no way to say 421 */
        conn_end(c, "shutdown");
        return;
    }
    conn_process(c);
}

void sk_conn_abort(sk_conn *c)
{
    if (c->proxy) {
        sk_proxy_accept_cancel(c, "abort");
        return;
    }
    c->commit_pending = 0;
    c->auth_pending = 0;
    if (c->ended)
        conn_finish(c);
    else
        conn_end(c, "abort");
}

void sk_conn_grace_expired(sk_conn *c)
{
    if (c->proxy) {
        sk_proxy_accept_cancel(c, "shutdown");
        return;
    }
    if (c->ended)
        return;
    if (c->closing) {
        /* a client that does not read its 421 does not delay the stop */
        conn_end(c, c->reason ? c->reason : "shutdown");
        return;
    }
    if (c->commit_pending || c->auth_pending || c->policy_pending)
        return; /* a durable commit is never cut short; it ends afterwards */
    conn_process(c);
}

/* Count the message's outcome and tell the session, which logs the
 * transaction and queues the reply to the end of data (250 only now that
 * the message is durable). */
static void conn_commit_result(sk_conn *c, const sk_store_outcome *out)
{
    if (out->result == SK_STORE_OK) {
        c->messages++;
        c->srv->messages++;
    } else {
        c->failed_messages++;
    }
    sk_session_commit_outcome(c->session, out);
}

void sk_conn_commit_done(void *arg, const sk_store_outcome *out)
{
    sk_conn *c = arg;
    c->commit_pending = 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    sk_metrics_commit(&c->srv->metrics,
                      (double)(now.tv_sec - c->commit_started.tv_sec) +
                          (double)(now.tv_nsec - c->commit_started.tv_nsec) / 1e9);
    const sk_store_outcome *o = out ? out : &(sk_store_outcome){.result = SK_STORE_IOERR};
    if (o->result != SK_STORE_OK && !c->store_err_logged)
        sk_conn_log_store_error(c, o->result, out ? &out->error : NULL);
    int queued = o->result == SK_STORE_OK && c->queued_id[0];
    conn_commit_result(c, o);
    if (c->ended) {
        if (queued)
            sk_agent_queued(c->srv->agent, c->queued_id);
        conn_finish(c);
        return;
    }
    conn_flush(c); /* the 250: the message is durable, queued copies too */
    if (queued)
        sk_agent_queued(c->srv->agent, c->queued_id);
    c->queued_id[0] = '\0';
    conn_process(c);
}

void sk_conn_auth_done(sk_conn *c, int result)
{
    c->auth_pending = 0;
    sk_session_auth_done(c->session, result);
    if (c->ended) {
        conn_finish(c); /* the client left while its password was hashed */
        return;
    }
    /* a failure's reply waits for its delay, counted from the verdict */
    if (c->auth_hold && conn_auth_hold(c) == 0)
        return; /* conn_auth_release() goes on */
    conn_flush(c);
    conn_process(c);
}

/* The milters' connect step is over: greet, or refuse the connection with
 * their reply (a reject: 554 5.7.1; a tempfail: 421 4.7.1), as Postfix
 * does for a milter's connect-time verdict. */
void sk_conn_milter_connected(sk_conn *c, const sk_policy_verdict *v)
{
    c->policy_pending = 0;
    if (c->ended)
        return;
    if (v->action == SK_POLICY_REJECT || v->action == SK_POLICY_TEMPFAIL) {
        int temp = v->action == SK_POLICY_TEMPFAIL;
        c->reason = "milter";
        sk_log(LOG_NOTICE, "event=milter-refused conn=%llu peer=%s step=connect action=%s", c->id,
               c->addr, temp ? "tempfail" : "reject");
        sk_session_refuse(c->session, temp ? 421 : 554, temp ? "4.7.1" : "5.7.1",
                          temp ? "Service unavailable - try again later"
                               : "Connection rejected by content filter");
    } else {
        sk_session_greet(c->session);
    }
    conn_flush(c);
    bufferevent_enable(c->bev, EV_WRITE);
    conn_process(c);
}

/* A milter verdict on a session step (SK_WANT_POLICY). */
void sk_conn_policy_done(sk_conn *c, const sk_policy_verdict *v)
{
    c->policy_pending = 0;
    if (c->ended)
        return;
    sk_session_policy_done(c->session, v);
    if (c->commit_failed_now) {
        /* the end of data went on to a commit the queue refused */
        c->commit_failed_now = 0;
        conn_commit_result(c, &(sk_store_outcome){.result = SK_STORE_IOERR});
    }
    conn_flush(c);
    conn_process(c);
}
