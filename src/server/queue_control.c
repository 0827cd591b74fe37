/*
 * queue_control.c - the server side of the queue control socket
 * (queue_control.h; protocol in queue/control_line.h). Each connection
 * sends one line and gets one answer, computed by a call into the delivery
 * agent (delivery/agent.h), which only schedules work and returns at once;
 * then the connection closes. Reading, writing and timeouts go through
 * libevent, so a client that sends nothing or never reads its answer costs
 * one bounded connection slot until its timeout, never the loop.
 */
#include "server/queue_control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "queue/control_line.h"
#include "queue/control_socket.h"
#include "server/log.h"

#define REPLY_MAX SK_CONTROL_LINE_MAX

typedef struct ctl_conn {
    struct sk_queue_control *qc;
    struct bufferevent *bev;
    struct ctl_conn *prev, *next;
    int answered; /* the answer is written (or being written) */
    int eof;      /* the client will send nothing more */
    size_t drained;
} ctl_conn;

struct sk_queue_control {
    struct event_base *base;
    sk_agent *agent;
    struct evconnlistener *lev;
    struct event *retry; /* re-enables accepting after EMFILE/ENFILE */
    int root_fd;
    char *root;
    ino_t ino; /* of the socket file we created, to remove only ours */
    dev_t dev;
    ctl_conn *conns;
    unsigned nconns;
};

static void clean_reply(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

void sk_queue_control_answer(sk_agent *agent, const char *line, size_t len, char *reply, size_t cap)
{
    if (!reply || cap == 0)
        return;
    sk_control_cmd c;
    char why[128];
    if (sk_control_parse(line, len, &c, why, sizeof why) < 0) {
        snprintf(reply, cap, "ERR %s", why);
        clean_reply(reply);
        return;
    }
    char msg[SK_CONTROL_ARG_MAX + 128] = "";
    int rc = 0;
    const char *target = c.arg[0] ? c.arg : NULL;
    if (!agent) {
        if (c.verb == SK_CONTROL_KICK) {
            snprintf(msg, sizeof msg, "%s: no delivery agent running, read at its start", c.arg);
        } else {
            rc = -1;
            snprintf(msg, sizeof msg, "no delivery agent running");
        }
    } else if (c.verb == SK_CONTROL_FLUSH) {
        rc = sk_agent_flush(agent, target, msg, sizeof msg);
    } else if (c.verb == SK_CONTROL_KICK) {
        rc = sk_agent_kick(agent, c.arg, msg, sizeof msg);
    } else {
        rc = sk_agent_bounce(agent, c.arg, msg, sizeof msg);
    }
    if (!msg[0])
        snprintf(msg, sizeof msg, "%s", rc == 0 ? "done" : "failed");
    snprintf(reply, cap, "%s %s", rc == 0 ? "OK" : "ERR", msg);
    clean_reply(reply);
}

static void conn_free(ctl_conn *cc)
{
    sk_queue_control *qc = cc->qc;
    if (cc->prev)
        cc->prev->next = cc->next;
    else
        qc->conns = cc->next;
    if (cc->next)
        cc->next->prev = cc->prev;
    qc->nconns--;
    bufferevent_free(cc->bev);
    free(cc);
}

/* After the answer, input is read and dropped until the client closes
 * (at most DRAIN_MAX octets, DRAIN_S seconds): closing a socket with unread
 * input makes the kernel reset it, and the client could lose the answer. */
#define DRAIN_MAX (64u << 10)
#define DRAIN_S 2

static void write_cb(struct bufferevent *bev, void *arg)
{
    ctl_conn *cc = arg;
    if (!cc->answered || evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;
    if (cc->eof) {
        conn_free(cc);
        return;
    }
    (void)shutdown(bufferevent_getfd(bev), SHUT_WR); /* the answer is complete */
}

static void answer(ctl_conn *cc, const char *line, size_t len)
{
    char reply[REPLY_MAX];
    sk_queue_control_answer(cc->qc->agent, line, len, reply, sizeof reply - 1);
    sk_control_cmd c;
    char verb[16] = "-", arg[80] = "-";
    if (sk_control_parse(line, len, &c, NULL, 0) == 0) {
        snprintf(verb, sizeof verb, "%s", sk_control_verb_name(c.verb));
        if (c.arg[0])
            sk_text_token(c.arg, arg, sizeof arg);
    }
    /* The answer as a quoted field: it never holds a control byte; its
     * quotes and backslashes become '. */
    char text[160];
    size_t tn = strnlen(reply, sizeof text - 1);
    memcpy(text, reply, tn);
    text[tn] = '\0';
    for (char *p = text; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '\'';
    sk_log(LOG_INFO, "event=queue-control command=%s arg=%s answer=\"%s\"", verb, arg, text);
    size_t n = strlen(reply);
    reply[n++] = '\n';
    cc->answered = 1;
    struct timeval tv = {.tv_sec = DRAIN_S};
    bufferevent_set_timeouts(cc->bev, &tv, &tv);
    if (bufferevent_write(cc->bev, reply, n) < 0)
        conn_free(cc);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    ctl_conn *cc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t have = evbuffer_get_length(in);
    if (cc->answered) {
        evbuffer_drain(in, have);
        cc->drained += have;
        if (cc->drained > DRAIN_MAX)
            conn_free(cc);
        return;
    }
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
    if (eol.pos >= 0 && (size_t)eol.pos + 1 <= SK_CONTROL_LINE_MAX) {
        size_t n = (size_t)eol.pos + 1;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)n);
        answer(cc, p, n);
    } else if (eol.pos >= 0 || have >= SK_CONTROL_LINE_MAX) {
        char big[SK_CONTROL_LINE_MAX + 2];
        memset(big, 'x', sizeof big);
        answer(cc, big, sizeof big); /* "ERR line too long" */
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    ctl_conn *cc = arg;
    if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) {
        cc->eof = 1;
        if (!cc->answered) {
            /* The client shut its side after a line without LF: answer it
             * (write_cb frees the connection once the answer is out). */
            struct evbuffer *in = bufferevent_get_input(bev);
            size_t n = evbuffer_get_length(in);
            if (n > 0 && n <= SK_CONTROL_LINE_MAX) {
                answer(cc, (const char *)evbuffer_pullup(in, (ssize_t)n), n);
                return;
            }
        } else if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
            return; /* write_cb frees it once the answer is out */
        }
    }
    conn_free(cc); /* EOF, error or timeout */
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)lev;
    (void)sa;
    (void)socklen;
    sk_queue_control *qc = arg;
    if (qc->nconns >= SK_QUEUE_CONTROL_CONNS) {
        static const char busy[] = "ERR busy\n"; /* best effort, never blocks */
        ssize_t w = send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        evutil_closesocket(fd);
        sk_log(LOG_WARNING, "event=queue-control answer=\"ERR busy\" conns=%u", qc->nconns);
        return;
    }
    ctl_conn *cc = calloc(1, sizeof *cc);
    struct bufferevent *bev =
        cc ? bufferevent_socket_new(qc->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(cc);
        evutil_closesocket(fd);
        return;
    }
    cc->qc = qc;
    cc->bev = bev;
    cc->next = qc->conns;
    if (qc->conns)
        qc->conns->prev = cc;
    qc->conns = cc;
    qc->nconns++;
    struct timeval tv = {.tv_sec = SK_QUEUE_CONTROL_TIMEOUT_S};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setwatermark(bev, EV_READ, 0, SK_CONTROL_LINE_MAX + 1);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, cc);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sk_queue_control *qc = arg;
    evconnlistener_enable(qc->lev);
}

/* accept() failed (out of descriptors...): pause a second rather than spin
 * on a socket that stays readable. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    sk_queue_control *qc = arg;
    int e = EVUTIL_SOCKET_ERROR();
    sk_log(LOG_WARNING, "event=queue-control-accept-error error=\"%s\"",
           evutil_socket_error_to_string(e));
    evconnlistener_disable(lev);
    struct timeval tv = {.tv_sec = 1};
    evtimer_add(qc->retry, &tv);
}

/* Whether something answers at dir/name: 1 yes, 0 no. */
static int answers(const char *root, int root_fd)
{
    struct sockaddr_un sa;
    socklen_t salen;
    if (sk_control_sockaddr(root, root_fd, SK_CONTROL_SOCKET_NAME, &sa, &salen) < 0)
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int r = connect(fd, (struct sockaddr *)&sa, salen) == 0;
    close(fd);
    return r;
}

sk_queue_control *sk_queue_control_start(struct event_base *base, const char *relay_queue,
                                         sk_agent *agent, char *err, size_t errlen)
{
    sk_queue_control *qc = calloc(1, sizeof *qc);
    if (!qc || !(qc->root = strdup(relay_queue))) {
        free(qc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    qc->base = base;
    qc->agent = agent;
    int fd = -1, tmp_fd = -1;
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "control.%ld", (long)getpid());
    qc->root_fd = open(relay_queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qc->root_fd < 0)
        goto fail_errno;
    if (answers(relay_queue, qc->root_fd)) {
        snprintf(err, errlen, "control socket %s/%s answers: another server runs on this queue",
                 relay_queue, SK_CONTROL_SOCKET_NAME);
        goto fail;
    }
    tmp_fd = openat(qc->root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (tmp_fd < 0)
        goto fail_errno;
    char tmpdir[4096];
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", relay_queue);
    struct sockaddr_un sa;
    socklen_t salen;
    if (sk_control_sockaddr(tmpdir, tmp_fd, tmpname, &sa, &salen) < 0)
        goto fail_errno;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail_errno;
    (void)unlinkat(tmp_fd, tmpname, 0); /* left by a crash of a process with our pid */
    /* Bound inside tmp/ (0700), made 0600, then renamed into place: the
     * socket is never reachable with wider permissions. */
    if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || fchmodat(tmp_fd, tmpname, 0600, 0) < 0 ||
        listen(fd, 16) < 0 || renameat(tmp_fd, tmpname, qc->root_fd, SK_CONTROL_SOCKET_NAME) < 0) {
        int e = errno;
        (void)unlinkat(tmp_fd, tmpname, 0);
        errno = e;
        goto fail_errno;
    }
    struct stat sb;
    if (fstatat(qc->root_fd, SK_CONTROL_SOCKET_NAME, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
        qc->ino = sb.st_ino;
        qc->dev = sb.st_dev;
    }
    close(tmp_fd);
    tmp_fd = -1;
    qc->retry = evtimer_new(base, retry_cb, qc);
    qc->lev =
        qc->retry ? evconnlistener_new(base, accept_cb, qc, LEV_OPT_CLOSE_ON_FREE, -1, fd) : NULL;
    if (!qc->lev) {
        if (qc->retry)
            event_free(qc->retry);
        snprintf(err, errlen, "control socket %s/%s: cannot listen", relay_queue,
                 SK_CONTROL_SOCKET_NAME);
        close(fd);
        fd = -1;
        (void)unlinkat(qc->root_fd, SK_CONTROL_SOCKET_NAME, 0);
        goto fail;
    }
    evconnlistener_set_error_cb(qc->lev, accept_error_cb);
    return qc;
fail_errno:
    snprintf(err, errlen, "control socket %s/%s: %s", relay_queue, SK_CONTROL_SOCKET_NAME,
             strerror(errno));
fail:
    if (fd >= 0)
        close(fd);
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (qc->root_fd >= 0)
        close(qc->root_fd);
    free(qc->root);
    free(qc);
    return NULL;
}

void sk_queue_control_free(sk_queue_control *qc)
{
    if (!qc)
        return;
    while (qc->conns)
        conn_free(qc->conns);
    if (qc->lev)
        evconnlistener_free(qc->lev);
    if (qc->retry)
        event_free(qc->retry);
    struct stat sb;
    if (qc->ino && fstatat(qc->root_fd, SK_CONTROL_SOCKET_NAME, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        sb.st_ino == qc->ino && sb.st_dev == qc->dev)
        (void)unlinkat(qc->root_fd, SK_CONTROL_SOCKET_NAME, 0);
    close(qc->root_fd);
    free(qc->root);
    free(qc);
}
