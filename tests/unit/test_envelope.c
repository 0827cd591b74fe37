/*
 * test_envelope.c - the outbound queue's envelope record (queue/envelope.c)
 * and queue directory (queue/queue_dir.c): round trips, escaping of values
 * that could break a line, every truncation and a set of corruptions
 * refused, atomic replacement on disk, scanning and cleaning.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "queue/envelope.h"
#include "queue/queue_dir.h"
#include "store_test_util.h"

static const char SAMPLE[] =
    "smtpkit-envelope 1\n"
    "id 0QJ2K5O1A3B4C00E1F00\n"
    "arrival 1764670000\n"
    "size 1234\n"
    "sender alice@example.test\n"
    "envid -\n"
    "ret -\n"
    "body 8bitmime\n"
    "smtputf8 0\n"
    "rcpt bob@example.net - - pending 0 1764670000 0 - - -\n"
    "rcpt carol@example.net rfc822;carol@example.net SUCCESS,DELAY deferred 3 1764680000 451 "
    "4.3.0 mx.example.net[192.0.2.1] Try%20again%20later\n"
    "end\n";

static void build(sk_envelope *e)
{
    sk_envelope_init(e);
    snprintf(e->id, sizeof e->id, "0QJ2K5O1A3B4C00E1F00");
    e->arrival = 1764670000;
    e->size = 99;
    assert_int_equal(sk_envelope_set(&e->sender, "\"odd sender\"@example.test"), 0);
    assert_int_equal(sk_envelope_set(&e->envid, "QQ%25-id"), 0);
    assert_int_equal(sk_envelope_set(&e->ret, "HDRS"), 0);
    e->body = SK_BODY_BINARYMIME;
    e->smtputf8 = 1;
    assert_int_equal(sk_envelope_add_rcpt(e, "bob@example.net", NULL, NULL, 1764670000), 0);
    assert_int_equal(sk_envelope_add_rcpt(e,
                                          "j\xc3\xb6rg@b\xc3\xbc"
                                          "cher.example",
                                          "utf-8;j\\x{F6}rg@b\\x{FC}cher.example", "NEVER",
                                          1764670001),
                     0);
    assert_int_equal(sk_envelope_add_rcpt(e, "-", "", "", 5), 0);
    sk_envelope_rcpt *r = &e->rcpts[1];
    r->state = SK_ENV_DEFERRED;
    r->attempts = 7;
    r->last.code = 451;
    assert_int_equal(sk_envelope_set(&r->last.enhanced, "4.3.0"), 0);
    assert_int_equal(sk_envelope_set(&r->last.host, "mx.example.net[192.0.2.1]"), 0);
    /* a reply text that tries to end the line and add a recipient */
    assert_int_equal(
        sk_envelope_set(&r->last.text, "busy\nrcpt evil@x - - pending 0 0 0 - - -\r\n100% sure"),
        0);
    e->rcpts[2].state = SK_ENV_HELD;
}

static void assert_same(const sk_envelope *a, const sk_envelope *b)
{
    assert_string_equal(a->id, b->id);
    assert_true(a->arrival == b->arrival && a->size == b->size);
    assert_string_equal(a->sender, b->sender);
    assert_string_equal(a->envid, b->envid);
    assert_string_equal(a->ret, b->ret);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->smtputf8, b->smtputf8);
    assert_int_equal(a->nrcpts, b->nrcpts);
    for (size_t i = 0; i < a->nrcpts; i++) {
        const sk_envelope_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
        assert_string_equal(x->addr, y->addr);
        assert_string_equal(x->orcpt, y->orcpt);
        assert_string_equal(x->notify, y->notify);
        assert_int_equal(x->state, y->state);
        assert_int_equal(x->attempts, y->attempts);
        assert_true(x->next_attempt == y->next_attempt);
        assert_int_equal(x->last.code, y->last.code);
        assert_string_equal(x->last.enhanced, y->last.enhanced);
        assert_string_equal(x->last.host, y->last.host);
        assert_string_equal(x->last.text, y->last.text);
    }
}

static void test_sample_parses(void **state)
{
    (void)state;
    sk_envelope e;
    char err[200];
    assert_int_equal(sk_envelope_parse(SAMPLE, strlen(SAMPLE), &e, err, sizeof err), 0);
    assert_string_equal(e.id, "0QJ2K5O1A3B4C00E1F00");
    assert_string_equal(e.sender, "alice@example.test");
    assert_string_equal(e.envid, "");
    assert_int_equal(e.body, SK_BODY_8BITMIME);
    assert_int_equal(e.nrcpts, 2);
    assert_int_equal(e.rcpts[0].state, SK_ENV_PENDING);
    assert_int_equal(e.rcpts[1].state, SK_ENV_DEFERRED);
    assert_int_equal(e.rcpts[1].attempts, 3);
    assert_int_equal(e.rcpts[1].last.code, 451);
    assert_string_equal(e.rcpts[1].last.text, "Try again later");
    assert_string_equal(e.rcpts[1].notify, "SUCCESS,DELAY");
    /* and it formats back to the same bytes */
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_envelope_format(&e, &b), 0);
    assert_string_equal(b.data, SAMPLE);
    sk_buf_free(&b);
    sk_envelope_clear(&e);
}

static void test_round_trip_escapes_everything(void **state)
{
    (void)state;
    sk_envelope e, back;
    build(&e);
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_envelope_format(&e, &b), 0);
    /* one line per field and recipient: nothing a value holds breaks one */
    size_t lines = 0;
    for (size_t i = 0; i < b.len; i++)
        lines += b.data[i] == '\n';
    assert_int_equal(lines, 9 + 3 + 1);
    assert_null(strchr(b.data, '\r'));
    assert_non_null(strstr(b.data, "\nrcpt %2D - - held 0 5 0 - - -\n"));
    assert_non_null(strstr(b.data, "100%25%20sure\n"));
    char err[200];
    assert_int_equal(sk_envelope_parse(b.data, b.len, &back, err, sizeof err), 0);
    assert_same(&e, &back);
    sk_buf_free(&b);
    sk_envelope_clear(&back);
    sk_envelope_clear(&e);
}

static void test_format_refuses_what_parse_would(void **state)
{
    (void)state;
    sk_envelope e;
    sk_buf b;
    sk_buf_init(&b, 0);
    build(&e);
    snprintf(e.id, sizeof e.id, "../etc");
    assert_int_equal(sk_envelope_format(&e, &b), -1);
    snprintf(e.id, sizeof e.id, "ABC");
    e.rcpts[0].last.code = 42;
    assert_int_equal(sk_envelope_format(&e, &b), -1);
    e.rcpts[0].last.code = 0;
    assert_int_equal(sk_envelope_set(&e.ret, "SOME"), 0);
    assert_int_equal(sk_envelope_format(&e, &b), -1);
    sk_envelope_clear(&e);
    sk_envelope_init(&e);
    snprintf(e.id, sizeof e.id, "ABC");
    assert_int_equal(sk_envelope_format(&e, &b), -1); /* no recipient */
    assert_int_equal(sk_envelope_add_rcpt(&e, "", NULL, NULL, 0), -1);
    sk_buf_free(&b);
    sk_envelope_clear(&e);
}

static void test_every_truncation_refused(void **state)
{
    (void)state;
    size_t n = strlen(SAMPLE);
    for (size_t len = 0; len < n; len++) {
        sk_envelope e;
        char err[200] = "";
        if (sk_envelope_parse(SAMPLE, len, &e, err, sizeof err) == 0)
            fail_msg("a record cut at %zu octets parsed", len);
        assert_int_equal(strncmp(err, "line ", 5), 0);
        assert_int_equal(e.nrcpts, 0);
        assert_null(e.rcpts);
    }
}

/* Replace the first occurrence of `from` in SAMPLE by `to` and parse. */
static void assert_corrupt(const char *from, const char *to, const char *why)
{
    char buf[2048];
    const char *p = strstr(SAMPLE, from);
    assert_non_null(p);
    int n = snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - SAMPLE), SAMPLE, to, p + strlen(from));
    assert_true(n > 0 && (size_t)n < sizeof buf);
    sk_envelope e;
    char err[200] = "";
    if (sk_envelope_parse(buf, (size_t)n, &e, err, sizeof err) == 0)
        fail_msg("corrupt record parsed (%s -> %s)", from, to);
    if (!strstr(err, why))
        fail_msg("%s -> %s: error \"%s\", want \"%s\"", from, to, err, why);
}

static void test_corruptions_refused(void **state)
{
    (void)state;
    assert_corrupt("smtpkit-envelope 1", "smtpkit-envelope 2", "line 1: unsupported version");
    assert_corrupt("smtpkit-envelope 1", "smtpkit-envelop 1", "line 1: not an envelope");
    assert_corrupt("id 0QJ2", "id ../", "line 2: bad id");
    assert_corrupt("arrival 1764670000", "arrival -1", "line 3: arrival: not a number");
    assert_corrupt("arrival 1764670000", "arrival 01764670000", "line 3");
    assert_corrupt("size 1234", "size 99999999999999999999999", "line 4");
    assert_corrupt("size 1234\nsender", "size 1234\nsize 1\nsender", "line 5: expected \"sender\"");
    assert_corrupt("sender alice@example.test", "sender alice@example.test x", "one value");
    assert_corrupt("sender alice@", "sender al%0ice@", "bad escape");
    assert_corrupt("sender alice@", "sender al%00ice@", "bad escape");
    assert_corrupt("sender alice@", "sender al%6", "bad escape");
    assert_corrupt("sender alice@", "sender al\tice@", "unescaped byte 0x09");
    assert_corrupt("sender alice@", "sender al\xc3\xa9@", "unescaped byte 0xC3");
    assert_corrupt("ret -", "ret SOME", "ret: FULL, HDRS or -");
    assert_corrupt("body 8bitmime", "body 9bit", "body:");
    assert_corrupt("smtputf8 0", "smtputf8 2", "smtputf8");
    assert_corrupt(" pending ", " lost ", "unknown state");
    assert_corrupt(" 0 1764670000 0 - - -", " 0 1764670000 0 - -", "10 values");
    assert_corrupt(" 0 1764670000 0 - - -", " 0 1764670000 0 - - - -", "10 values");
    assert_corrupt(" 0 1764670000 0 - - -", " 0 1764670000 0 -  - -", "10 values");
    assert_corrupt(" 0 1764670000 0 - - -", " 0 1764670000 0 - - - ", "10 values");
    assert_corrupt(" 0 1764670000 0 - - -", " 0 1764670000 199 - - -", "reply code");
    assert_corrupt(" 0 1764670000 0 - - -", " 0 1764670000 600 - - -", "reply code");
    assert_corrupt("rcpt bob@example.net", "rcpt -", "empty address");
    assert_corrupt("end\n", "end\nrcpt x@y - - pending 0 0 0 - - -\n", "data after \"end\"");
    assert_corrupt("end\n", "end", "not terminated");
    assert_corrupt("end\n", "the end\n", "expected \"rcpt\" or \"end\"");
    assert_corrupt("rcpt bob", "rcpt  bob", "10 values");
    assert_corrupt("\n", "\r\n", "line 1");
    /* a record without any recipient */
    const char *norcpt = strstr(SAMPLE, "rcpt ");
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%.*send\n", (int)(norcpt - SAMPLE), SAMPLE);
    sk_envelope e;
    char err[200];
    assert_int_equal(sk_envelope_parse(buf, (size_t)n, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "no recipient"));
    /* a NUL byte anywhere */
    memcpy(buf, SAMPLE, sizeof SAMPLE);
    buf[30] = '\0';
    assert_int_equal(sk_envelope_parse(buf, strlen(SAMPLE), &e, err, sizeof err), -1);
}

/* ---- on disk ------------------------------------------------------------- */

struct qfx {
    char *dir;
    sk_queue_dir *q;
};

static int qsetup(void **state)
{
    struct qfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    assert_non_null(f->dir);
    char root[PATH_MAX], err[256];
    f->q = sk_queue_dir_open(tu_path(root, "%s/relay/queue", f->dir), err, sizeof err);
    if (!f->q)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int qteardown(void **state)
{
    struct qfx *f = *state;
    sk_queue_dir_close(f->q);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Queue a message by hand as the store does: msg/ID, then env/ID. */
static void put(struct qfx *f, const char *id, int with_msg)
{
    sk_envelope e;
    build(&e);
    snprintf(e.id, sizeof e.id, "%s", id);
    if (with_msg) {
        int fd = openat(sk_queue_dir_msg_fd(f->q), id, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "Subject: x\r\n\r\nbody\r\n", 20), 20);
        close(fd);
    }
    assert_int_equal(
        sk_envelope_save(sk_queue_dir_env_fd(f->q), id, sk_queue_dir_tmp_fd(f->q), &e, 1), 0);
    sk_envelope_clear(&e);
}

struct seen {
    char ids[8][32];
    int ok[8];
    int n;
};

static int on_record(void *arg, const char *id, const sk_envelope *env, const char *err)
{
    struct seen *s = arg;
    assert_true(s->n < 8);
    snprintf(s->ids[s->n], 32, "%s", id);
    s->ok[s->n] = env != NULL;
    if (env)
        assert_string_equal(env->id, id);
    else
        assert_non_null(err);
    s->n++;
    return 0;
}

static void test_queue_layout_update_scan_remove(void **state)
{
    struct qfx *f = *state;
    char p[PATH_MAX];
    static const char *const subs[] = {"msg", "env", "tmp"};
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        assert_int_equal(stat(tu_path(p, "%s/relay/queue/%s", f->dir, subs[i]), &sb), 0);
        assert_true(S_ISDIR(sb.st_mode));
        assert_int_equal(sb.st_mode & 0777, 0700);
    }
    put(f, "0002", 1);
    put(f, "0001", 1);
    put(f, "0003", 0); /* an envelope whose message is missing: reported broken */
    /* a corrupt record and a file that is not an id */
    int fd = openat(sk_queue_dir_env_fd(f->q), "0004", O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, "smtpkit-envelope 1\nid 0004\n", 27), 27);
    close(fd);
    fd = openat(sk_queue_dir_env_fd(f->q), "not-an-id.tmp", O_WRONLY | O_CREAT, 0600);
    close(fd);

    struct seen s = {0};
    assert_int_equal(sk_queue_dir_scan(f->q, on_record, &s), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.ids[0], "0001");
    assert_string_equal(s.ids[1], "0002");
    assert_string_equal(s.ids[2], "0003");
    assert_string_equal(s.ids[3], "0004");
    assert_true(s.ok[0] && s.ok[1] && !s.ok[2] && !s.ok[3]);

    /* update: atomic replacement, nothing left in tmp/ */
    sk_envelope e;
    char err[256];
    assert_int_equal(sk_queue_dir_load(f->q, "0001", &e, err, sizeof err), 0);
    e.rcpts[0].state = SK_ENV_SENT;
    e.rcpts[0].attempts = 1;
    e.rcpts[0].last.code = 250;
    assert_int_equal(sk_envelope_set(&e.rcpts[0].last.text, "2.0.0 Ok: queued as X"), 0);
    assert_int_equal(sk_queue_dir_update(f->q, &e), 0);
    sk_envelope_clear(&e);
    assert_int_equal(sk_queue_dir_load(f->q, "0001", &e, err, sizeof err), 0);
    assert_int_equal(e.rcpts[0].state, SK_ENV_SENT);
    assert_int_equal(e.rcpts[0].last.code, 250);
    assert_int_equal(tu_count(tu_path(p, "%s/relay/queue/tmp", f->dir), NULL), 0);
    /* an update never brings back a removed message */
    assert_int_equal(sk_queue_dir_remove(f->q, "0001"), 0);
    assert_int_equal(sk_queue_dir_update(f->q, &e), -1);
    assert_int_equal(errno, ENOENT);
    sk_envelope_clear(&e);
    assert_int_equal(sk_queue_dir_load(f->q, "0001", &e, err, sizeof err), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(sk_queue_dir_remove(f->q, "0001"), -1);
    assert_int_equal(sk_queue_dir_remove(f->q, "../x"), -1);
    struct stat sb;
    assert_int_equal(stat(tu_path(p, "%s/relay/queue/msg/0001", f->dir), &sb), -1);
    /* a record stored under another id's name is refused */
    assert_int_equal(renameat(sk_queue_dir_env_fd(f->q), "0002", sk_queue_dir_env_fd(f->q), "0009"),
                     0);
    assert_int_equal(sk_queue_dir_load(f->q, "0009", &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "not 0009"));
}

static void test_queue_clean_orphans(void **state)
{
    struct qfx *f = *state;
    put(f, "0001", 1);
    int fd = openat(sk_queue_dir_msg_fd(f->q), "0002", O_WRONLY | O_CREAT, 0600); /* no env */
    close(fd);
    fd = openat(sk_queue_dir_tmp_fd(f->q), "0003.1.2.env", O_WRONLY | O_CREAT, 0600);
    close(fd);
    /* fresh files are kept: they may belong to a commit in progress */
    assert_int_equal(sk_queue_dir_clean(f->q, 3600), 0);
    assert_int_equal(sk_queue_dir_clean(f->q, 0), 2);
    char p[PATH_MAX];
    assert_int_equal(tu_count(tu_path(p, "%s/relay/queue/msg", f->dir), NULL), 1);
    assert_int_equal(tu_count(tu_path(p, "%s/relay/queue/tmp", f->dir), NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_parses),
        cmocka_unit_test(test_round_trip_escapes_everything),
        cmocka_unit_test(test_format_refuses_what_parse_would),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_corruptions_refused),
        cmocka_unit_test_setup_teardown(test_queue_layout_update_scan_remove, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_queue_clean_orphans, qsetup, qteardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
