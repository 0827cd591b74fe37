/*
 * peer_count.h - open connections per client address, for the per-address
 * connection limit (answered with 421 4.7.0, RFC 5321 3.8 / RFC 3463 4.7.0).
 */
#ifndef SMTPKIT_SERVER_PEER_COUNT_H
#define SMTPKIT_SERVER_PEER_COUNT_H

typedef struct sk_peer_count sk_peer_count;

sk_peer_count *sk_peer_count_new(void);
void sk_peer_count_free(sk_peer_count *pc);
/* Count one more connection from `addr`; returns the new count, 0 if out of
 * memory (the caller then refuses the connection). */
unsigned sk_peer_count_inc(sk_peer_count *pc, const char *addr);
/* One connection from `addr` ended. */
void sk_peer_count_dec(sk_peer_count *pc, const char *addr);

#endif
