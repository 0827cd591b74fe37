/*
 * message_id.c - message ids: time-ordered, unique, file-name safe (see
 * message_id.h). RFC 5321 4.4: the Received header's "id" is an Atom.
 */
#include "store/message_id.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";

static atomic_ullong id_counter;

/* The low 5*digits bits of v in base32hex, most significant first. */
static void put32(char *out, unsigned long long v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = alphabet[v & 31];
        v >>= 5;
    }
}

int sk_message_id_make(char *out, size_t cap)
{
    if (!out || cap <= SK_MESSAGE_ID_LEN)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long q = atomic_fetch_add(&id_counter, 1);
    put32(out, (unsigned long long)ts.tv_sec, 7);
    put32(out + 7, (unsigned long long)(ts.tv_nsec / 1000), 4);
    put32(out + 11, (unsigned long long)getpid(), 5);
    put32(out + 16, q, 4);
    out[SK_MESSAGE_ID_LEN] = '\0';
    return 0;
}

int sk_message_id_valid(const char *s)
{
    if (!s || strlen(s) != SK_MESSAGE_ID_LEN)
        return 0;
    for (size_t i = 0; i < SK_MESSAGE_ID_LEN; i++) {
        if (!memchr(alphabet, s[i], 32))
            return 0;
    }
    return 1;
}
