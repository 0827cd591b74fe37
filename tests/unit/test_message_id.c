/*
 * test_message_id.c - message ids (src/store/message_id.c): fixed width,
 * the base32hex alphabet, ordered by time, unique across threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "store/message_id.h"

#define PER_THREAD 20000
#define THREADS 4

static void test_format(void **state)
{
    (void)state;
    char id[SK_MESSAGE_ID_LEN + 1];
    assert_int_equal(sk_message_id_make(id, sizeof id), 0);
    assert_int_equal(strlen(id), SK_MESSAGE_ID_LEN);
    assert_true(sk_message_id_valid(id));
    assert_int_equal(sk_message_id_make(id, SK_MESSAGE_ID_LEN), -1); /* no room for the NUL */
    /* the first 7 characters are the seconds, base32hex */
    unsigned long long sec = 0;
    for (int i = 0; i < 7; i++)
        sec = sec * 32 + (unsigned long long)(id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
    long long diff = (long long)sec - (long long)time(NULL);
    assert_true(diff > -60 && diff < 60);
    assert_false(sk_message_id_valid("0123456789ABCDEFGHIW")); /* W is not base32hex */
    assert_false(sk_message_id_valid("0123456789ABCDEFGHI"));
    assert_false(sk_message_id_valid("0123456789ABCDEFGHIJK"));
    assert_false(sk_message_id_valid(NULL));
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void *make_many(void *arg)
{
    char(*ids)[SK_MESSAGE_ID_LEN + 1] = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        if (sk_message_id_make(ids[i], sizeof ids[i]) < 0)
            return (void *)1;
        /* made one after the other: never smaller than the one before */
        if (i && strcmp(ids[i], ids[i - 1]) < 0)
            return (void *)2;
    }
    return NULL;
}

static void test_unique_and_ordered_across_threads(void **state)
{
    (void)state;
    char(*ids)[SK_MESSAGE_ID_LEN + 1] = calloc((size_t)THREADS * PER_THREAD, sizeof *ids);
    assert_non_null(ids);
    pthread_t t[THREADS];
    for (int k = 0; k < THREADS; k++)
        assert_int_equal(pthread_create(&t[k], NULL, make_many, ids + (size_t)k * PER_THREAD), 0);
    for (int k = 0; k < THREADS; k++) {
        void *rc;
        assert_int_equal(pthread_join(t[k], &rc), 0);
        assert_null(rc);
    }
    qsort(ids, (size_t)THREADS * PER_THREAD, sizeof *ids, cmp_id);
    for (size_t i = 1; i < (size_t)THREADS * PER_THREAD; i++)
        assert_int_not_equal(strcmp(ids[i - 1], ids[i]), 0);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_unique_and_ordered_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
