/*
 * agent.h - the delivery agent: takes messages from the outbound queue
 * (queue/queue_dir.h), resolves their destinations, delivers them with the
 * client core and records each recipient's fate in its envelope record
 * (docs/DELIVERY.md). It runs on the server's event loop.
 *
 * This part of the interface is what the queue control socket
 * (`smtpkit queue`, server/queue_control.c) asks of a running agent. The
 * control side changes records on disk itself, under sk_queue_dir_lock()
 * (hold, release, delete), then asks the agent to re-read them; the agent
 * re-reads a record under the same lock before every attempt and after
 * every attempt applies its results to the record as it is on disk then,
 * so an operator's change made meanwhile is never overwritten.
 *
 * Each call answers at once (the work it starts goes on in the loop):
 * 0 with a short message for the operator in msg, or -1 with the reason.
 */
#ifndef SMTPKIT_DELIVERY_AGENT_H
#define SMTPKIT_DELIVERY_AGENT_H

#include <stddef.h>

typedef struct sk_agent sk_agent;

/* Try now, ignoring back-off: the message `target` when it is a queue id,
 * else every message with a recipient at the domain `target`; every
 * message when target is NULL. Held recipients stay held. */
int sk_agent_flush(sk_agent *a, const char *target, char *msg, size_t msglen);

/* Re-read the record of `id` from disk and schedule it accordingly (held,
 * released, removed, or changed by the operator). */
int sk_agent_kick(sk_agent *a, const char *id, char *msg, size_t msglen);

/* Give up on every recipient of `id` not yet delivered or bounced: each
 * is bounced (5.0.0 "removed from the queue by the administrator") with a
 * delivery status notification to the sender (none for the null sender),
 * and the message leaves the queue. */
int sk_agent_bounce(sk_agent *a, const char *id, char *msg, size_t msglen);

#endif
