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

/* ---- what the metrics endpoint reports ------------------------------- */

/* Queue states of a message, by its recipients still to deliver: pending
 * when one was never tried, else deferred when one waits for its next
 * attempt, else held (only held recipients are left). */
typedef enum sk_agent_queue_state {
    SK_AGENT_PENDING,
    SK_AGENT_DEFERRED,
    SK_AGENT_HELD,
    SK_AGENT_STATES
} sk_agent_queue_state;

typedef struct sk_agent_queue_stats {
    struct {
        unsigned long long messages;   /* messages in this state */
        unsigned long long recipients; /* recipients in this state (of any message) */
        long long oldest_arrival;      /* Unix seconds of the oldest message */
    } state[SK_AGENT_STATES];
    unsigned long long unreadable; /* records that could not be read */
    /* recipient results of delivery attempts since the start, as the
     * event=delivery log lines report them */
    unsigned long long sent, deferred, bounced;
} sk_agent_queue_stats;

/* Fill *out from one walk of the queue's records (each record is read:
 * the cost grows with the queue). 0, or -1 when the queue cannot be read
 * (the counters are filled anyway). */
int sk_agent_stats(sk_agent *a, sk_agent_queue_stats *out);

/* ---- the agent's life in the server (server.c, conn.c) ---------------- */

struct event_base;
struct sk_config;
struct sk_policy;
struct sk_store;
struct sk_work_queue;

/* An agent on the server's loop for the outbound queue of `store`
 * (relay_queue): resolver, TLS client context, schedule. `policy` points at
 * the server's current tables (swapped by a reload): bounces to local
 * senders go to their Maildirs. `work` runs the record updates and bounce
 * commits (fsync) off the loop. NULL with err filled on failure. */
sk_agent *sk_agent_new(struct event_base *base, const struct sk_config *cfg,
                       struct sk_policy *const *policy, struct sk_store *store,
                       struct sk_work_queue *work, char *err, size_t errlen);
/* Scan the queue, rebuild the schedule, start the timer. Messages that were
 * being delivered when the process stopped are simply due again. Returns
 * the number of queued messages found. */
size_t sk_agent_start(sk_agent *a);
/* The message `id` is queued and durable (its 250 went out): try it now. */
void sk_agent_queued(sk_agent *a, const char *id);
/* Shutdown: start nothing more and close every delivery connection (an
 * attempt cut short changes nothing on disk, so the message is tried again
 * after the restart; record updates already on a worker finish there). */
void sk_agent_stop(sk_agent *a);
/* After the loop and the work queue have stopped. NULL is ignored. */
void sk_agent_free(sk_agent *a);

#endif
