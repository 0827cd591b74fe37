/*
 * auth_limit.c - failed-AUTH budgets per client address and per
 * connection (RFC 4954 section 4 and 6: 454 4.7.0 while an address is
 * blocked; 421 4.7.0 when a connection has failed too often).
 *
 * The per-address table is a fixed array of 8-way sets indexed by a keyed
 * hash of the address, so its memory never grows and an attacker cannot
 * pick addresses that collide on purpose. Each slot is a leaky bucket
 * counted in units of 1/window_seconds of a failure, so that draining
 * max_failures per window is exact integer arithmetic (one failure is
 * window_seconds units; max_failures units drain per second).
 */
#include "server/auth_limit.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SET_WAYS 8

typedef struct slot {
    uint8_t key[16];
    uint8_t used;
    time_t updated;
    uint64_t level; /* failures x window_seconds */
} slot;

struct sk_auth_limit {
    sk_auth_limit_config cfg;
    slot *slots;
    size_t nsets;
    uint64_t hash_key[2];
};

void sk_auth_limit_defaults(sk_auth_limit_config *cfg)
{
    cfg->max_failures = 10;
    cfg->window_seconds = 900;
    cfg->table_slots = 4096;
    cfg->max_conn_failures = 3;
    cfg->fail_delay_ms = 1000;
}

sk_auth_limit *sk_auth_limit_new(const sk_auth_limit_config *cfg)
{
    sk_auth_limit *al = calloc(1, sizeof *al);
    if (!al)
        return NULL;
    sk_auth_limit_defaults(&al->cfg);
    if (cfg) {
        if (cfg->max_failures)
            al->cfg.max_failures = cfg->max_failures;
        if (cfg->window_seconds)
            al->cfg.window_seconds = cfg->window_seconds;
        if (cfg->table_slots)
            al->cfg.table_slots = cfg->table_slots;
        if (cfg->max_conn_failures)
            al->cfg.max_conn_failures = cfg->max_conn_failures;
        al->cfg.fail_delay_ms = cfg->fail_delay_ms; /* 0 is a valid choice */
    }
    /* Keep the bucket arithmetic far from overflow. */
    if (al->cfg.max_failures > 1000000)
        al->cfg.max_failures = 1000000;
    if (al->cfg.window_seconds > 10000000)
        al->cfg.window_seconds = 10000000;
    /* Whole sets only; at least one. Capped so the table stays small. */
    size_t slots = al->cfg.table_slots;
    if (slots > (1u << 20))
        slots = 1u << 20;
    al->nsets = (slots + SET_WAYS - 1) / SET_WAYS;
    al->cfg.table_slots = (unsigned)(al->nsets * SET_WAYS);
    al->slots = calloc(al->nsets * SET_WAYS, sizeof *al->slots);
    if (!al->slots) {
        free(al);
        return NULL;
    }
    if (getrandom(al->hash_key, sizeof al->hash_key, 0) != (ssize_t)sizeof al->hash_key) {
        /* Without the kernel's randomness the sets are merely predictable. */
        al->hash_key[0] = (uint64_t)(uintptr_t)al ^ 0x9e3779b97f4a7c15ULL;
        al->hash_key[1] = (uint64_t)time(NULL);
    }
    return al;
}

void sk_auth_limit_free(sk_auth_limit *al)
{
    if (!al)
        return;
    free(al->slots);
    free(al);
}

const sk_auth_limit_config *sk_auth_limit_get_config(const sk_auth_limit *al)
{
    return &al->cfg;
}

/* IPv4 and IPv4-mapped: the whole address. IPv6: the /64 prefix. */
static void make_key(const char *addr, uint8_t key[16])
{
    struct in_addr v4;
    struct in6_addr v6;
    memset(key, 0, 16);
    if (addr && inet_pton(AF_INET, addr, &v4) == 1) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &v4, 4);
    } else if (addr && inet_pton(AF_INET6, addr, &v6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&v6))
            memcpy(key, &v6, 16);
        else
            memcpy(key, &v6, 8);
    } else {
        memset(key, 0xff, 16); /* not an address: one shared bucket */
    }
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static size_t set_of(const sk_auth_limit *al, const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = mix(a ^ al->hash_key[0]);
    h = mix(h ^ b ^ al->hash_key[1]);
    return (size_t)(h % al->nsets);
}

/* Bring a slot's level up to date: drain max_failures per window. */
static void drain(const sk_auth_limit *al, slot *s, time_t now)
{
    if (now <= s->updated) {
        if (now < s->updated)
            s->updated = now; /* the clock went back: restart from here */
        return;
    }
    uint64_t elapsed = (uint64_t)(now - s->updated);
    /* A level never exceeds two windows' worth (see the cap in
     * sk_auth_limit_failure), so two windows drain anything; below that
     * the product stays far from overflow given the clamps in new(). */
    uint64_t drained =
        elapsed >= 2ULL * al->cfg.window_seconds ? UINT64_MAX : elapsed * al->cfg.max_failures;
    s->level = drained >= s->level ? 0 : s->level - drained;
    s->updated = now;
}

static slot *lookup(sk_auth_limit *al, const char *addr, time_t now, int create)
{
    uint8_t key[16];
    make_key(addr, key);
    slot *set = &al->slots[set_of(al, key) * SET_WAYS];
    for (int i = 0; i < SET_WAYS; i++)
        if (set[i].used && !memcmp(set[i].key, key, 16)) {
            drain(al, &set[i], now);
            return &set[i];
        }
    if (!create)
        return NULL;
    /* A free slot, else one that has drained to nothing, else the one with
     * the lowest level (the least evidence of an attack is lost). */
    slot *victim = NULL;
    for (int i = 0; i < SET_WAYS && !victim; i++)
        if (!set[i].used)
            victim = &set[i];
    for (int i = 0; i < SET_WAYS && !victim; i++) {
        drain(al, &set[i], now);
        if (set[i].level == 0)
            victim = &set[i];
    }
    if (!victim) {
        victim = &set[0];
        for (int i = 1; i < SET_WAYS; i++)
            if (set[i].level < victim->level)
                victim = &set[i];
    }
    memcpy(victim->key, key, 16);
    victim->used = 1;
    victim->level = 0;
    victim->updated = now;
    return victim;
}

int sk_auth_limit_blocked(sk_auth_limit *al, const char *addr, time_t now)
{
    slot *s = lookup(al, addr, now, 0);
    /* Allowed only if one more failure would still fit the budget: after
     * the limit, the next try comes after one drain interval. */
    uint64_t one = al->cfg.window_seconds;
    return s && s->level + one > (uint64_t)al->cfg.max_failures * one;
}

void sk_auth_limit_failure(sk_auth_limit *al, const char *addr, time_t now)
{
    slot *s = lookup(al, addr, now, 1);
    /* Saturate a little above the threshold: a long attack does not buy an
     * ever-longer block for an address that may be shared (NAT). */
    uint64_t one = al->cfg.window_seconds;
    uint64_t cap = (uint64_t)al->cfg.max_failures * one * 2;
    s->level = s->level + one > cap ? cap : s->level + one;
}

unsigned sk_auth_limit_level(sk_auth_limit *al, const char *addr, time_t now)
{
    slot *s = lookup(al, addr, now, 0);
    uint64_t one = al->cfg.window_seconds;
    return s ? (unsigned)((s->level + one - 1) / one) : 0;
}

unsigned sk_auth_limit_tracked(const sk_auth_limit *al)
{
    unsigned n = 0;
    for (size_t i = 0; i < al->nsets * SET_WAYS; i++)
        n += al->slots[i].used;
    return n;
}

int sk_auth_conn_failed(const sk_auth_limit *al, sk_auth_conn *c)
{
    c->failures++;
    return c->failures >= al->cfg.max_conn_failures;
}
