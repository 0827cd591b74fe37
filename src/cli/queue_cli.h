/*
 * queue_cli.h - the pieces of `smtpkit queue` (cmd_queue.c): listing and
 * showing records (queue_list.c), changing them under the queue lock
 * (queue_edit.c). Exit statuses are those of smtpkit-queue(1).
 */
#ifndef SMTPKIT_CLI_QUEUE_CLI_H
#define SMTPKIT_CLI_QUEUE_CLI_H

#include <stdio.h>
#include <time.h>

#include "queue/queue_dir.h"

enum {
    SK_QUEUE_EXIT_OK = 0,
    SK_QUEUE_EXIT_ERROR = 1,      /* configuration, queue or I/O error; ERR from the server */
    SK_QUEUE_EXIT_USAGE = 2,      /* bad arguments, malformed id or domain */
    SK_QUEUE_EXIT_NO_MESSAGE = 3, /* no such message in the queue */
    SK_QUEUE_EXIT_NO_SERVER = 4,  /* flush/bounce: the server is not running */
};

/* queue_list.c: print every record (text, or JSON with json), oldest
 * first. Returns an exit status. */
int sk_queue_list(sk_queue_dir *q, int json, time_t now, FILE *out);
/* Print one record in full and its message's header section. */
int sk_queue_show(sk_queue_dir *q, const char *id, int json, time_t now, FILE *out);

/* queue_edit.c: each holds the queue lock around its load-change-save of
 * a record and says what it did in msg. An exit status. */
int sk_queue_hold(sk_queue_dir *q, const char *id, char *msg, size_t msglen);
int sk_queue_release(sk_queue_dir *q, const char *id, time_t now, char *msg, size_t msglen);
int sk_queue_delete(sk_queue_dir *q, const char *id, char *msg, size_t msglen);
/* Deferred recipients of the message `id`, or of every message with a
 * recipient at `domain` (when id is NULL; every message when both are
 * NULL), become due now. *changed counts the records updated. */
int sk_queue_make_due(sk_queue_dir *q, const char *id, const char *domain, time_t now,
                      unsigned *changed, char *msg, size_t msglen);

/* 1 if the address's domain (after the last '@') is `domain`, ignoring
 * case. */
int sk_queue_rcpt_at(const char *addr, const char *domain);

#endif
