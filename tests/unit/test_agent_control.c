/*
 * test_agent_control.c - the delivery agent's control interface
 * (delivery/agent.h) without any network: a queue with one message for a
 * remote recipient, an agent on an event loop that is never run except to
 * finish the work queue's jobs. sk_agent_bounce() bounces the message with
 * an RFC 3464 report into the local sender's Maildir and removes it from
 * the queue; a null sender gets no report; sk_agent_kick() and
 * sk_agent_flush() answer for queued, held and unknown ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <event2/event.h>
#include <poll.h>
#include <unistd.h>

#include "delivery/agent.h"
#include "queue/queue_dir.h"
#include "server/work_queue.h"
#include "smtpkit/config.h"
#include "smtpkit/policy.h"
#include "smtpkit/store.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sk-test-agent-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct world {
    sk_config *cfg;
    sk_policy *policy;
    sk_store *store;
    sk_work_queue *work;
    struct event_base *base;
    sk_agent *agent;
} world;

static void world_open(world *w)
{
    char path[128], text[1024], err[512];
    snprintf(path, sizeof path, "%s/smtpkit.conf", dir);
    snprintf(text, sizeof text,
             "server_name = \"mx.example.test\";\n"
             "mail_root = \"%s/mail\";\n"
             "relay_queue = \"%s/queue\";\n"
             "listeners = ( { address = \"127.0.0.1\"; port = 2525; } );\n"
             "domains = [ \"example.test\" ];\n"
             "mailboxes = ( { address = \"alice@example.test\"; maildir = \"alice\"; } );\n"
             "delivery = { dns_servers = [ \"127.0.0.1:9\" ]; };\n",
             dir, dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    w->cfg = sk_config_load(path, err, sizeof err);
    if (!w->cfg)
        fail_msg("config: %s", err);
    w->policy = sk_policy_new(w->cfg, err, sizeof err);
    assert_non_null(w->policy);
    w->store = sk_store_open(w->cfg->spool_dir, w->cfg->relay_queue, err, sizeof err);
    if (!w->store)
        fail_msg("store: %s", err);
    w->work = sk_work_queue_new(1);
    w->base = event_base_new();
    assert_non_null(w->work);
    assert_non_null(w->base);
    w->agent = sk_agent_new(w->base, w->cfg, &w->policy, w->store, w->work, err, sizeof err);
    if (!w->agent)
        fail_msg("agent: %s", err);
}

static void world_close(world *w)
{
    sk_agent_stop(w->agent);
    sk_work_queue_free(w->work);
    sk_agent_free(w->agent);
    event_base_free(w->base);
    sk_store_close(w->store);
    sk_policy_free(w->policy);
    sk_config_free(w->cfg);
}

/* Queue one message from `sender` to bob@remote.test; its id into id. */
static void queue_one(world *w, const char *sender, char id[32])
{
    sk_store_result res;
    sk_store_msg *m = sk_store_begin(w->store, id, &res);
    assert_non_null(m);
    static const char msg[] = "From: alice@example.test\r\nSubject: out\r\n\r\nhello\r\n";
    assert_int_equal(sk_store_append(m, msg, sizeof msg - 1), SK_STORE_OK);
    sk_store_envelope env = {.sender = sender, .nrcpts = 1};
    sk_store_dest d = {.kind = SK_DEST_QUEUE, .target = "bob@remote.test", .rcpt = 0};
    assert_int_equal(sk_store_commit(m, &env, &d, 1, NULL), SK_STORE_OK);
}

/* Wait (bounded) for the work queue's jobs and run their completions. */
static void finish_jobs(world *w)
{
    for (int i = 0; i < 500 && sk_work_queue_pending(w->work) > 0; i++) {
        struct pollfd p = {.fd = sk_work_queue_fd(w->work), .events = POLLIN};
        (void)poll(&p, 1, 10);
        sk_work_queue_drain(w->work);
    }
    assert_int_equal(sk_work_queue_pending(w->work), 0);
}

static size_t count_files(const char *sub)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static char *read_first(const char *sub)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *de;
    char *out = NULL;
    while ((de = readdir(d)) && !out) {
        if (de->d_name[0] == '.')
            continue;
        char f[600];
        snprintf(f, sizeof f, "%s/%s", p, de->d_name);
        FILE *fp = fopen(f, "rb");
        assert_non_null(fp);
        out = calloc(1, 65536);
        assert_non_null(out);
        size_t n = fread(out, 1, 65535, fp);
        out[n] = '\0';
        fclose(fp);
    }
    closedir(d);
    return out;
}

static void test_bounce_reports_to_the_local_sender(void **state)
{
    (void)state;
    world w;
    world_open(&w);
    char id[32], msg[256];
    queue_one(&w, "alice@example.test", id);
    assert_int_equal(count_files("queue/env"), 1);
    assert_int_equal(sk_agent_kick(w.agent, id, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "scheduled"));
    assert_int_equal(sk_agent_bounce(w.agent, id, msg, sizeof msg), 0);
    /* a second bounce while the first is on a worker is refused */
    assert_int_equal(sk_agent_bounce(w.agent, id, msg, sizeof msg), -1);
    finish_jobs(&w);
    assert_int_equal(count_files("queue/env"), 0);
    assert_int_equal(count_files("queue/msg"), 0);
    assert_int_equal(count_files("mail/alice/new"), 1);
    char *dsn = read_first("mail/alice/new");
    assert_non_null(strstr(dsn, "report-type=delivery-status"));
    assert_non_null(strstr(dsn, "Final-Recipient: rfc822; bob@remote.test"));
    assert_non_null(strstr(dsn, "Action: failed"));
    assert_non_null(strstr(dsn, "Status: 5.0.0"));
    assert_non_null(strstr(dsn, "removed from the queue by the administrator"));
    assert_non_null(strstr(dsn, "Subject: out")); /* the original's headers */
    free(dsn);
    /* gone now */
    assert_int_equal(sk_agent_kick(w.agent, id, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "not in the queue"));
    assert_int_equal(sk_agent_bounce(w.agent, id, msg, sizeof msg), -1);
    world_close(&w);
}

static void test_null_sender_bounce_makes_no_report(void **state)
{
    (void)state;
    world w;
    world_open(&w);
    char id[32], msg[256];
    queue_one(&w, "", id);
    assert_int_equal(sk_agent_bounce(w.agent, id, msg, sizeof msg), 0);
    finish_jobs(&w);
    assert_int_equal(count_files("queue/env"), 0);
    assert_int_equal(count_files("mail/alice/new"), 0);
    world_close(&w);
}

static void test_flush_and_kick_answers(void **state)
{
    (void)state;
    world w;
    world_open(&w);
    char id[32], msg[256];
    queue_one(&w, "alice@example.test", id);
    assert_int_equal(sk_agent_start(w.agent), 1);
    assert_int_equal(sk_agent_flush(w.agent, id, msg, sizeof msg), 0);
    assert_string_equal(msg, "1 message to try now");
    assert_int_equal(sk_agent_flush(w.agent, "remote.test", msg, sizeof msg), 0);
    assert_string_equal(msg, "1 message to try now");
    assert_int_equal(sk_agent_flush(w.agent, "elsewhere.test", msg, sizeof msg), 0);
    assert_string_equal(msg, "0 messages to try now");
    assert_int_equal(sk_agent_flush(w.agent, NULL, msg, sizeof msg), 0);
    assert_string_equal(msg, "1 message to try now");
    assert_int_equal(sk_agent_kick(w.agent, "../etc", msg, sizeof msg), -1);
    /* held by the operator: the agent drops it from its schedule */
    sk_queue_dir *q = sk_store_queue_dir(w.store);
    sk_envelope e;
    char err[200];
    sk_queue_dir_lock(q);
    assert_int_equal(sk_queue_dir_load(q, id, &e, err, sizeof err), 0);
    e.rcpts[0].state = SK_ENV_HELD;
    assert_int_equal(sk_queue_dir_update(q, &e), 0);
    sk_queue_dir_unlock(q);
    sk_envelope_clear(&e);
    assert_int_equal(sk_agent_kick(w.agent, id, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "held or done"));
    assert_int_equal(sk_agent_flush(w.agent, NULL, msg, sizeof msg), 0);
    assert_string_equal(msg, "0 messages to try now");
    world_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bounce_reports_to_the_local_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_sender_bounce_makes_no_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_and_kick_answers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
