/*
 * test_rcpt_result.c - the delivery agent's pure parts (rcpt_result.h):
 * the state a reply gives in each phase (RFC 5321 4.2.1, 4.5.3.1.10: 552
 * to RCPT is 452), grouping of due recipients by domain with the
 * per-transaction cap, and the application of an attempt's results to the
 * envelope record (final states, retry times, expiry with 4.4.7, records
 * changed meanwhile left alone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/rcpt_result.h"

static void test_state_of_reply(void **state)
{
    (void)state;
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_DATA_END, 250), SK_DLV_SENT);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_RCPT, 251), SK_DLV_SENT);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_RCPT, 450), SK_DLV_DEFER);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_RCPT, 421), SK_DLV_DEFER);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_RCPT, 550), SK_DLV_BOUNCE);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_RCPT, 551), SK_DLV_BOUNCE);
    /* RFC 5321 4.5.3.1.10: 552 to RCPT is a temporary "too many" */
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_RCPT, 552), SK_DLV_DEFER);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_DATA_END, 552), SK_DLV_BOUNCE);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_MAIL, 553), SK_DLV_BOUNCE);
    assert_int_equal(sk_dlv_state_of(SK_CC_PHASE_MAIL, 451), SK_DLV_DEFER);
}

static void test_set_defaults_enhanced_by_class(void **state)
{
    (void)state;
    sk_dlv_rcpt_result r;
    memset(&r, 0, sizeof r);
    sk_dlv_set(&r, SK_DLV_BOUNCE, 550, "", "mx[192.0.2.1]:25", "no");
    assert_string_equal(r.enhanced, "5.0.0");
    sk_dlv_set(&r, SK_DLV_DEFER, 451, NULL, NULL, NULL);
    assert_string_equal(r.enhanced, "4.0.0");
    assert_string_equal(r.host, "");
    sk_dlv_set(&r, SK_DLV_BOUNCE, 550, "5.1.1", "h", "t");
    assert_string_equal(r.enhanced, "5.1.1");
    assert_string_equal(sk_dlv_domain("a@b.example"), "b.example");
    assert_string_equal(sk_dlv_domain("\"x@y\"@z.example"), "z.example");
    assert_string_equal(sk_dlv_domain("postmaster"), "");
}

static void make_env(sk_envelope *e, const char *const *addrs, size_t n)
{
    sk_envelope_init(e);
    snprintf(e->id, sizeof e->id, "ID1");
    e->arrival = 1000;
    assert_int_equal(sk_envelope_set(&e->sender, "alice@example.test"), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sk_envelope_add_rcpt(e, addrs[i], NULL, NULL, 1000), 0);
}

static void test_grouping_by_domain_and_cap(void **state)
{
    (void)state;
    static const char *const a[] = {"a@one.test", "b@two.test", "c@ONE.test",
                                    "d@one.test", "e@two.test", "f@one.test"};
    sk_envelope e;
    make_env(&e, a, 6);
    e.rcpts[3].state = SK_ENV_SENT;     /* done: never again */
    e.rcpts[5].state = SK_ENV_DEFERRED; /* not due yet */
    e.rcpts[5].next_attempt = 5000;
    unsigned char taken[6] = {0};
    size_t idx[6];
    size_t n = sk_dlv_next_group(&e, 2000, 0, taken, 50, idx);
    assert_int_equal(n, 2); /* a, c: one.test, case-insensitive */
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    for (size_t i = 0; i < n; i++)
        taken[idx[i]] = 1;
    n = sk_dlv_next_group(&e, 2000, 0, taken, 50, idx);
    assert_int_equal(n, 2); /* b, e */
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 4);
    for (size_t i = 0; i < n; i++)
        taken[idx[i]] = 1;
    assert_int_equal(sk_dlv_next_group(&e, 2000, 0, taken, 50, idx), 0);
    /* forced (flush): the deferred one too */
    assert_int_equal(sk_dlv_next_group(&e, 2000, 1, taken, 50, idx), 1);
    assert_int_equal(idx[0], 5);
    /* the per-transaction cap */
    memset(taken, 0, sizeof taken);
    assert_int_equal(sk_dlv_next_group(&e, 2000, 0, taken, 1, idx), 1);
    assert_int_equal(sk_dlv_next_due(&e), 1000);
    e.rcpts[0].state = e.rcpts[1].state = e.rcpts[2].state = e.rcpts[4].state = SK_ENV_BOUNCED;
    assert_int_equal(sk_dlv_next_due(&e), 5000);
    assert_false(sk_dlv_all_final(&e));
    e.rcpts[5].state = SK_ENV_HELD;
    assert_int_equal(sk_dlv_next_due(&e), -1);
    assert_false(sk_dlv_all_final(&e)); /* held stays in the queue */
    e.rcpts[5].state = SK_ENV_SENT;
    assert_true(sk_dlv_all_final(&e));
    sk_envelope_clear(&e);
}

static sk_dlv_rcpt_result result(size_t index, const char *addr, sk_dlv_state st, int code,
                                 const char *enh)
{
    sk_dlv_rcpt_result r;
    memset(&r, 0, sizeof r);
    r.index = index;
    snprintf(r.addr, sizeof r.addr, "%s", addr);
    sk_dlv_set(&r, st, code, enh, "mx.test[127.0.0.2]:25", "words");
    return r;
}

static void test_apply_results(void **state)
{
    (void)state;
    static const char *const a[] = {"a@x.test", "b@x.test", "c@x.test", "d@x.test"};
    sk_envelope e;
    make_env(&e, a, 4);
    e.rcpts[3].state = SK_ENV_HELD; /* held by the operator meanwhile */
    sk_retry_policy p;
    sk_retry_policy_default(&p);
    p.jitter_pct = 0;
    sk_dlv_rcpt_result res[5] = {
        result(0, "a@x.test", SK_DLV_SENT, 250, "2.0.0"),
        result(1, "b@x.test", SK_DLV_BOUNCE, 550, "5.1.1"),
        result(2, "c@x.test", SK_DLV_DEFER, 451, "4.3.0"),
        result(3, "d@x.test", SK_DLV_SENT, 250, "2.0.0"),
        result(2, "other@x.test", SK_DLV_SENT, 250, "2.0.0"), /* not this record's */
    };
    size_t bounced[5];
    size_t nb = sk_dlv_apply(&e, res, 5, &p, 1100, 0, bounced);
    assert_int_equal(nb, 1);
    assert_int_equal(bounced[0], 1);
    assert_int_equal(e.rcpts[0].state, SK_ENV_SENT);
    assert_int_equal(e.rcpts[0].attempts, 1);
    assert_int_equal(e.rcpts[1].state, SK_ENV_BOUNCED);
    assert_int_equal(e.rcpts[1].last.code, 550);
    assert_string_equal(e.rcpts[1].last.enhanced, "5.1.1");
    assert_string_equal(e.rcpts[1].last.host, "mx.test[127.0.0.2]:25");
    assert_int_equal(e.rcpts[2].state, SK_ENV_DEFERRED);
    assert_int_equal(e.rcpts[2].next_attempt, 1100 + 300); /* retry_min, no jitter */
    assert_int_equal(e.rcpts[3].state, SK_ENV_HELD);       /* untouched */
    assert_int_equal(e.rcpts[3].attempts, 0);
    /* the same result again: final recipients do not change */
    nb = sk_dlv_apply(&e, res, 2, &p, 1200, 0, bounced);
    assert_int_equal(nb, 0);
    assert_int_equal(e.rcpts[0].attempts, 1);
    sk_envelope_clear(&e);
}

static void test_apply_gives_up_after_the_lifetime(void **state)
{
    (void)state;
    static const char *const a[] = {"a@x.test"};
    sk_envelope e;
    make_env(&e, a, 1);
    sk_retry_policy p;
    sk_retry_policy_default(&p);
    sk_dlv_rcpt_result res = result(0, "a@x.test", SK_DLV_DEFER, 451, "4.3.0");
    size_t bounced[1];
    size_t nb = sk_dlv_apply(&e, &res, 1, &p, 1000 + (long long)p.lifetime + 1, 0, bounced);
    assert_int_equal(nb, 1);
    assert_int_equal(e.rcpts[0].state, SK_ENV_BOUNCED);
    assert_string_equal(e.rcpts[0].last.enhanced, "4.4.7");
    assert_non_null(strstr(e.rcpts[0].last.text, "words"));
    sk_envelope_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_of_reply),
        cmocka_unit_test(test_set_defaults_enhanced_by_class),
        cmocka_unit_test(test_grouping_by_domain_and_cap),
        cmocka_unit_test(test_apply_results),
        cmocka_unit_test(test_apply_gives_up_after_the_lifetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
