/*
 * dialogue.c - the SMTP client's side of the dialogue: greeting, EHLO with
 * HELO fallback (RFC 5321 4.1.1.1, 3.2), LHLO (LMTP, RFC 2033 4.1), STARTTLS (RFC 3207), implicit
 * TLS (RFC 8314), AUTH PLAIN/LOGIN (RFC 4954, RFC 4616), QUIT (4.1.1.10).
 */
#include "client/client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sk_client_greeting(sk_client *c, sk_reply *r)
{
    if (sk_client_read_reply(c, r) < 0) {
        if (c->err == SK_CLIENT_ERR_TIMEOUT) {
            c->err = SK_CLIENT_OK; /* reword: this timeout has a clearer name */
            sk_client_set_error(c, SK_CLIENT_ERR_TIMEOUT,
                                "%s accepted the connection but sent no greeting within %d s "
                                "(timeout)",
                                c->peer, (c->o.timeout_ms + 999) / 1000);
        } else if (c->err == SK_CLIENT_ERR_CLOSED && c->rbuf.len == 0) {
            c->err = SK_CLIENT_OK;
            sk_client_set_error(c, SK_CLIENT_ERR_CLOSED,
                                "%s closed the connection before sending a greeting", c->peer);
        }
        return -1;
    }
    c->greeting_ms = (sk_monotonic() - c->t_connected) * 1000.0;
    return 0;
}

int sk_client_ehlo(sk_client *c, const char *name, sk_reply *r)
{
    char line[600];
    snprintf(line, sizeof line, "EHLO %s", name);
    sk_caps_clear(&c->caps);
    if (sk_client_command(c, line, r) < 0)
        return -1;
    if (r->code == 250) {
        sk_caps_parse_reply(&c->caps, r);
        return 0;
    }
    if (r->code != 500 && r->code != 502)
        return 0; /* e.g. 421 or 554: the caller reports it */
    /* RFC 5321 4.1.4: a server that does not know EHLO gets HELO. */
    sk_transcript_addf(&c->tr, SK_DIR_INFO, "EHLO not supported: falling back to HELO");
    sk_reply_free(r);
    snprintf(line, sizeof line, "HELO %s", name);
    return sk_client_command(c, line, r);
}

int sk_client_lhlo(sk_client *c, const char *name, sk_reply *r)
{
    char line[600];
    snprintf(line, sizeof line, "LHLO %s", name);
    sk_caps_clear(&c->caps);
    if (sk_client_command(c, line, r) < 0)
        return -1;
    if (r->code == 250)
        sk_caps_parse_reply(&c->caps, r);
    return 0; /* LMTP has no HELO: any refusal is the caller's to report */
}

int sk_client_tls_handshake(sk_client *c)
{
    return sk_client_tls_start(c);
}

int sk_client_starttls(sk_client *c, sk_reply *r)
{
    memset(r, 0, sizeof *r);
    if (sk_client_command(c, "STARTTLS", r) < 0)
        return -1;
    if (r->code != 220) {
        char one[300];
        sk_reply_oneline(r, one, sizeof one);
        sk_client_set_error(c, SK_CLIENT_ERR_TLS, "%s refused STARTTLS: %s", c->peer, one);
        return -1;
    }
    if (c->rbuf.len) {
        /* Bytes sent after the 220 in the clear could be injected replies
         * (CVE-2011-0411 family): they are thrown away, never parsed. */
        sk_transcript_addf(&c->tr, SK_DIR_INFO,
                           "discarding %zu bytes the server sent in the clear after 220",
                           c->rbuf.len);
        sk_buf_clear(&c->rbuf);
    }
    if (sk_client_tls_start(c) < 0)
        return -1;
    sk_caps_clear(&c->caps); /* RFC 3207 4.2: forget what was learnt before TLS */
    return 0;
}

/* Send one AUTH data line, shown as <redacted>. */
static int send_secret(sk_client *c, const char *prefix, const char *data, size_t n)
{
    char *b = sk_client_b64(data, n);
    if (!b) {
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    size_t pl = strlen(prefix), bl = strlen(b);
    char *line = malloc(pl + bl + 1);
    if (!line) {
        explicit_bzero(b, bl);
        free(b);
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    memcpy(line, prefix, pl);
    memcpy(line + pl, b, bl + 1);
    char shown[64];
    snprintf(shown, sizeof shown, "%s<redacted>", prefix);
    int rc = sk_client_send_line(c, line, shown);
    explicit_bzero(line, pl + bl);
    explicit_bzero(b, bl);
    free(line);
    free(b);
    return rc;
}

int sk_client_auth(sk_client *c, const char *user, const char *pass, sk_reply *r)
{
    memset(r, 0, sizeof *r);
    size_t ul = strlen(user), pl = strlen(pass);
    if (c->caps.auth & SK_AUTH_PLAIN) {
        /* RFC 4616: authzid NUL authcid NUL passwd, sent as initial response. */
        if (ul > 255 || pl > 255) {
            sk_client_set_error(c, SK_CLIENT_ERR_USAGE, "user name or password too long");
            return -1;
        }
        char msg[520];
        msg[0] = '\0';
        memcpy(msg + 1, user, ul);
        msg[1 + ul] = '\0';
        memcpy(msg + 2 + ul, pass, pl);
        int rc = send_secret(c, "AUTH PLAIN ", msg, 2 + ul + pl);
        explicit_bzero(msg, sizeof msg);
        if (rc < 0 || sk_client_read_reply(c, r) < 0)
            return -1;
    } else if (c->caps.auth & SK_AUTH_LOGIN) {
        if (sk_client_command(c, "AUTH LOGIN", r) < 0)
            return -1;
        if (r->code == 334) {
            sk_reply_free(r);
            if (send_secret(c, "", user, ul) < 0 || sk_client_read_reply(c, r) < 0)
                return -1;
        }
        if (r->code == 334) {
            sk_reply_free(r);
            if (send_secret(c, "", pass, pl) < 0 || sk_client_read_reply(c, r) < 0)
                return -1;
        }
    } else {
        sk_client_set_error(c, SK_CLIENT_ERR_USAGE,
                            "%s offers no AUTH mechanism smtpkit can use (PLAIN or LOGIN)%s%s",
                            c->peer, c->caps.auth_list[0] ? "; it offers: " : "",
                            c->caps.auth_list);
        return -1;
    }
    if (r->code == 334) {
        /* A server asking for more than the mechanism needs: cancel (RFC 4954 4). */
        sk_reply_free(r);
        if (sk_client_command(c, "*", r) < 0)
            return -1;
    }
    if (r->code != 235) {
        char one[300];
        sk_reply_oneline(r, one, sizeof one);
        sk_client_set_error(c, SK_CLIENT_ERR_REFUSED, "authentication as %s failed: %s", user, one);
        return -1;
    }
    return 0;
}

void sk_client_quit(sk_client *c)
{
    if (c->fd < 0)
        return;
    sk_client_err saved = c->err;
    char savedmsg[sizeof c->errmsg];
    memcpy(savedmsg, c->errmsg, sizeof savedmsg);
    int to = c->o.timeout_ms;
    if (c->o.timeout_ms > 3000)
        c->o.timeout_ms = 3000; /* a server that ignores QUIT should not hold us */
    sk_reply r;
    if (sk_client_command(c, "QUIT", &r) == 0)
        sk_reply_free(&r);
    c->o.timeout_ms = to;
    /* Problems after QUIT do not change the outcome of the session. */
    c->err = saved;
    memcpy(c->errmsg, savedmsg, sizeof savedmsg);
    sk_client_close(c);
}
