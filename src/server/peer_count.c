/*
 * peer_count.c - a small chained hash table: client address -> number of
 * open connections. Entries disappear when their count drops to zero, so
 * its size is bounded by the connection limit.
 */
#include "server/peer_count.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024 /* power of two */

typedef struct pc_entry {
    struct pc_entry *next;
    unsigned count;
    char addr[]; /* NUL-terminated */
} pc_entry;

struct sk_peer_count {
    pc_entry *buckets[NBUCKETS];
};

static size_t bucket_of(const char *addr)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h & (NBUCKETS - 1);
}

sk_peer_count *sk_peer_count_new(void)
{
    return calloc(1, sizeof(sk_peer_count));
}

void sk_peer_count_free(sk_peer_count *pc)
{
    if (!pc)
        return;
    for (size_t i = 0; i < NBUCKETS; i++) {
        pc_entry *e = pc->buckets[i];
        while (e) {
            pc_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(pc);
}

unsigned sk_peer_count_inc(sk_peer_count *pc, const char *addr)
{
    size_t b = bucket_of(addr);
    for (pc_entry *e = pc->buckets[b]; e; e = e->next)
        if (!strcmp(e->addr, addr))
            return ++e->count;
    size_t len = strlen(addr);
    pc_entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return 0;
    memcpy(e->addr, addr, len + 1);
    e->count = 1;
    e->next = pc->buckets[b];
    pc->buckets[b] = e;
    return 1;
}

void sk_peer_count_dec(sk_peer_count *pc, const char *addr)
{
    pc_entry **pp = &pc->buckets[bucket_of(addr)];
    for (; *pp; pp = &(*pp)->next) {
        pc_entry *e = *pp;
        if (strcmp(e->addr, addr) != 0)
            continue;
        if (--e->count == 0) {
            *pp = e->next;
            free(e);
        }
        return;
    }
}
