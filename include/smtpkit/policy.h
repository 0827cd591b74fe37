/*
 * policy.h - who may send mail to whom: the recipient tables (local domains,
 * mailboxes, aliases, catch-all, postmaster) and the relay rule (trusted
 * networks or an authenticated client). RFC 5321 2.3.5 (domains), 2.4
 * (local parts are case-sensitive unless the site says otherwise; domains
 * never are), 4.5.1 (postmaster), 3.6 (relaying).
 *
 * A policy is built once from a loaded configuration and is immutable; a
 * reload builds a new one and swaps it. Lookups return self-contained
 * deliveries (copies of paths), so nothing points into a policy after the
 * call returns.
 */
#ifndef SMTPKIT_POLICY_H
#define SMTPKIT_POLICY_H

#include <stddef.h>

#include "smtpkit/config.h"
#include "smtpkit/session.h"

typedef struct sk_policy sk_policy;

/* Where one accepted recipient's copies go: local Maildirs and addresses in
 * other domains for the outbound queue (a relayed recipient itself, or the
 * remote targets of an alias). */
typedef struct sk_delivery {
    char **maildirs;  /* absolute Maildir directories, no duplicates */
    char **mailboxes; /* mailboxes[i]: the mailbox address of maildirs[i] (the
                         LMTP recipient when local mail goes to LMTP) */
    size_t nmaildirs;
    char **remote; /* addresses to deliver to through the outbound queue */
    size_t nremote;
    char *forward_to; /* first address in another domain (alias), or NULL */
    int queued;       /* nremote > 0: some copy goes to the outbound queue */
} sk_delivery;

/* Build the tables; validates cross references (alias targets, catch-all,
 * postmaster, trusted networks). NULL with "FILE:LINE: message" on error. */
sk_policy *sk_policy_new(const sk_config *cfg, char *err, size_t errlen);
void sk_policy_free(sk_policy *p);

/* 1 if the numeric address `addr` ("192.0.2.1", "2001:db8::1",
 * "::ffff:192.0.2.1") is in a trusted network. */
int sk_policy_trusted(const sk_policy *p, const char *addr);

/* 1 if `domain` (any case) is one of ours. */
int sk_policy_is_local_domain(const sk_policy *p, const char *domain);

/* The verdict for recipient `addr` (mailbox without <>: "user@domain" or the
 * bare "postmaster"). `may_relay` is set when the client is trusted or
 * authenticated. On SK_RCPT_ACCEPT / SK_RCPT_FORWARD, *out is a new delivery
 * (free with sk_delivery_free); otherwise *out is NULL. A failure to
 * allocate answers SK_RCPT_TEMPFAIL. */
sk_rcpt_verdict sk_policy_rcpt(const sk_policy *p, const char *addr, int may_relay,
                               sk_delivery **out);
void sk_delivery_free(sk_delivery *d);

/* Counts, for the log line at start and reload. */
size_t sk_policy_ndomains(const sk_policy *p);
size_t sk_policy_nmailboxes(const sk_policy *p);
size_t sk_policy_naliases(const sk_policy *p);
/* Every Maildir the tables can deliver to (the mailboxes; the outbound
 * queue is not one), for creating them at start. */
size_t sk_policy_nmaildirs(const sk_policy *p);
const char *sk_policy_maildir(const sk_policy *p, size_t i);

#endif
