/*
 * transaction.c - one mail transaction from the client side: MAIL, RCPT...,
 * then DATA (RFC 5321 3.3, 4.5.2) or BDAT (RFC 3030). With PIPELINING
 * (RFC 2920) MAIL, every RCPT and DATA go out in one write and the replies
 * are read back in order; without it each command waits for its reply.
 */
#include "client/client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BDAT_CHUNK (64 * 1024)

static void keep(const sk_reply *r, int *code, char *text, size_t n)
{
    *code = r->code;
    sk_reply_oneline(r, text, n);
}

static int is2xx(int code)
{
    return code >= 200 && code < 300;
}

/* Append "VERB:<arg>[ params]\r\n"; verb is "MAIL FROM" or "RCPT TO". */
static int append_cmd(sk_buf *b, const char *verb, const char *arg, const char *params)
{
    if (sk_buf_printf(b, "%s:<%s>", verb, arg) < 0)
        return -1;
    if (params && *params && sk_buf_printf(b, " %s", params) < 0)
        return -1;
    return sk_buf_append(b, "\r\n", 2);
}

/* Record what the message data looks like without flooding the transcript:
 * the header lines, then one line summing up the body. */
static void record_message(sk_client *c, const char *m, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && m[i] != '\n')
            i++;
        size_t e = i > s && m[i - 1] == '\r' ? i - 1 : i;
        if (i < n)
            i++;
        if (e == s) { /* the empty line: the body follows */
            sk_transcript_add(&c->tr, SK_DIR_CLIENT, "", 0);
            break;
        }
        sk_transcript_add(&c->tr, SK_DIR_CLIENT, m + s, e - s);
    }
    if (i < n)
        sk_transcript_addf(&c->tr, SK_DIR_INFO, "(message body: %zu bytes not shown)", n - i);
}

static int send_data(sk_client *c, sk_txn *t)
{
    sk_buf norm, out;
    sk_buf_init(&norm, 0);
    sk_buf_init(&out, 0);
    int bad = sk_crlf_normalise(t->msg, t->msglen, &norm) < 0 ||
              sk_dot_stuff(norm.data ? norm.data : "", norm.len, &out) < 0;
    sk_buf_free(&norm);
    if (bad) {
        sk_buf_free(&out);
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "message too large for memory");
        return -1;
    }
    record_message(c, t->msg, t->msglen);
    sk_transcript_add(&c->tr, SK_DIR_CLIENT, ".", 1);
    sk_client_expect(c, "DATA-END");
    int rc = sk_client_send_raw(c, out.data, out.len, 0);
    sk_buf_free(&out);
    return rc;
}

static int send_bdat(sk_client *c, sk_txn *t)
{
    size_t off = 0;
    do {
        size_t n = t->msglen - off > BDAT_CHUNK ? BDAT_CHUNK : t->msglen - off;
        int last = off + n == t->msglen;
        char line[64];
        snprintf(line, sizeof line, "BDAT %zu%s", n, last ? " LAST" : "");
        if (sk_client_send_line(c, line, NULL) < 0)
            return -1;
        if (off == 0)
            record_message(c, t->msg, t->msglen);
        if (n && sk_client_send_raw(c, t->msg + off, n, 0) < 0)
            return -1;
        sk_reply r;
        if (sk_client_read_reply(c, &r) < 0)
            return -1;
        int ok = is2xx(r.code);
        if (last || !ok) {
            /* The reply to the last chunk, or a refused chunk, is the verdict. */
            t->data_code = r.code;
            keep(&r, &t->final_code, t->final_text, sizeof t->final_text);
        }
        sk_reply_free(&r);
        if (!ok)
            return 0;
        off += n;
    } while (off < t->msglen);
    return 0;
}

int sk_client_transaction(sk_client *c, sk_txn *t)
{
    t->mail_code = t->data_code = t->final_code = 0;
    t->mail_text[0] = t->final_text[0] = '\0';
    t->accepted = 0;
    for (size_t i = 0; i < t->nrcpts; i++) {
        t->results[i].addr = t->rcpts[i];
        t->results[i].code = 0;
        t->results[i].text[0] = '\0';
    }
    if (t->use_bdat && !c->caps.chunking) {
        sk_client_set_error(c, SK_CLIENT_ERR_USAGE,
                            "%s does not offer CHUNKING, so BDAT cannot be used", c->peer);
        return -1;
    }
    int pipelined = c->caps.pipelining;
    int send_data_cmd = !t->no_data && !t->use_bdat;

    sk_buf cmds;
    sk_buf_init(&cmds, 0);
    int bad = append_cmd(&cmds, "MAIL FROM", t->mail_from, t->mail_params) < 0;
    for (size_t i = 0; i < t->nrcpts && !bad; i++)
        bad = append_cmd(&cmds, "RCPT TO", t->rcpts[i], NULL) < 0;
    if (!bad && send_data_cmd)
        bad = sk_buf_append_str(&cmds, "DATA\r\n") < 0;
    if (bad) {
        sk_buf_free(&cmds);
        sk_client_set_error(c, SK_CLIENT_ERR_NOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cmds.len; i++) {
        if (cmds.data[i] == '\r' && (i + 1 >= cmds.len || cmds.data[i + 1] != '\n')) {
            sk_buf_free(&cmds);
            sk_client_set_error(c, SK_CLIENT_ERR_USAGE, "an address contains a line break");
            return -1;
        }
    }

    /* Walk the command lines; in pipelined mode all are written first. */
    if (pipelined && sk_client_send_raw(c, cmds.data, cmds.len, 1) < 0) {
        sk_buf_free(&cmds);
        return -1;
    }
    size_t pos = 0;
    size_t step = 0; /* 0 = MAIL, 1..n = RCPT, n+1 = DATA */
    int rc = 0;
    while (pos < cmds.len) {
        char *eol = memchr(cmds.data + pos, '\n', cmds.len - pos);
        size_t end = (size_t)(eol - cmds.data) + 1;
        if (!pipelined) {
            /* Stop early where waiting for the reply tells us to. */
            if (step > 0 && step <= t->nrcpts && !is2xx(t->mail_code))
                break;
            if (step == t->nrcpts + 1 && t->accepted == 0)
                break;
            if (sk_client_send_raw(c, cmds.data + pos, end - pos, 1) < 0) {
                rc = -1;
                break;
            }
        }
        sk_reply r;
        if (sk_client_read_reply(c, &r) < 0) {
            rc = -1;
            break;
        }
        if (step == 0) {
            keep(&r, &t->mail_code, t->mail_text, sizeof t->mail_text);
        } else if (step <= t->nrcpts) {
            sk_rcpt_result *res = &t->results[step - 1];
            keep(&r, &res->code, res->text, sizeof res->text);
            if (is2xx(r.code))
                t->accepted++;
        } else {
            t->data_code = r.code;
            if (r.code != 354) /* a refused DATA is the verdict; 354 is not */
                keep(&r, &t->final_code, t->final_text, sizeof t->final_text);
        }
        sk_reply_free(&r);
        pos = end;
        step++;
    }
    sk_buf_free(&cmds);
    if (rc < 0)
        return -1;

    if (t->data_code == 354 && (!is2xx(t->mail_code) || t->accepted == 0)) {
        /* RFC 2920 3.1: a pipelined DATA was accepted though MAIL or every
         * RCPT failed; end the data at once, empty, so nothing is delivered. */
        sk_transcript_addf(&c->tr, SK_DIR_INFO, "nothing to deliver: ending DATA empty");
        sk_reply r;
        if (sk_client_send_raw(c, ".\r\n", 3, 1) < 0 || sk_client_read_reply(c, &r) < 0)
            return -1;
        sk_reply_free(&r);
        return 0;
    }
    if (t->no_data || !is2xx(t->mail_code) || t->accepted == 0) {
        /* Nothing (more) to send: leave the server in a clean state. */
        sk_reply r;
        if (sk_client_command(c, "RSET", &r) < 0)
            return -1;
        sk_reply_free(&r);
        return 0;
    }
    if (t->use_bdat)
        return send_bdat(c, t);
    if (t->data_code != 354)
        return 0; /* DATA refused: its reply is the verdict */
    if (send_data(c, t) < 0)
        return -1;
    sk_reply r;
    if (sk_client_read_reply(c, &r) < 0)
        return -1;
    keep(&r, &t->final_code, t->final_text, sizeof t->final_text);
    sk_reply_free(&r);
    return 0;
}
