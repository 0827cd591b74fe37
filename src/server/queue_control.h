/*
 * queue_control.h - the queue control socket of a running server:
 * <relay_queue>/control, a Unix stream socket through which
 * `smtpkit queue` asks the delivery agent to flush, re-read (kick) or
 * bounce messages (protocol: queue/control_line.h; design:
 * docs/ARCHITECTURE.md, "Operating the queue").
 *
 * Created by the server as its own user after the privilege drop, mode
 * 0600 (bound in <relay_queue>/tmp/, which is 0700, then renamed into
 * place, so it is never reachable with wider permissions). Bounded: one
 * request line of at most SK_CONTROL_LINE_MAX octets per connection,
 * SK_QUEUE_CONTROL_CONNS connections at once (more are refused with
 * "ERR busy"), SK_QUEUE_CONTROL_TIMEOUT_S per connection; everything runs
 * on the event loop without blocking it.
 */
#ifndef SMTPKIT_SERVER_QUEUE_CONTROL_H
#define SMTPKIT_SERVER_QUEUE_CONTROL_H

#include <stddef.h>

#include "delivery/agent.h"

struct event_base;

#define SK_QUEUE_CONTROL_CONNS 8
#define SK_QUEUE_CONTROL_TIMEOUT_S 10

typedef struct sk_queue_control sk_queue_control;

/* Listen on <relay_queue>/control on base. agent may be NULL (no delivery
 * agent runs: delivery.enabled is false): FLUSH and BOUNCE then answer
 * "ERR no delivery agent running" and KICK answers OK (the record is read
 * when an agent starts).
 * A socket there from a server that is gone is replaced; one that answers
 * means another server runs on this queue: refused. NULL with err. */
sk_queue_control *sk_queue_control_start(struct event_base *base, const char *relay_queue,
                                         sk_agent *agent, char *err, size_t errlen);
/* Close every connection and the socket, and remove the socket file when
 * it is still ours. NULL is fine. */
void sk_queue_control_free(sk_queue_control *qc);

/* The answer (one line, no line end, at most cap-1 octets, no control
 * bytes) to one request line of len octets: parse it and call the agent. */
void sk_queue_control_answer(sk_agent *agent, const char *line, size_t len, char *reply,
                             size_t cap);

#endif
