/*
 * dovecot_auth.h - SMTP AUTH (RFC 4954) PLAIN and LOGIN credentials checked
 * by Dovecot's auth server over its auth-client Unix socket
 * (`dovecot_auth = "/run/dovecot/auth-client";`), as Postfix's
 * `smtpd_sasl_type = dovecot` does: one connection on the event loop
 * (libevent), requests multiplexed by id, reconnected when lost. Protocol
 * lines: dovecot_auth_proto.h.
 */
#ifndef SMTPKIT_SERVER_DOVECOT_AUTH_H
#define SMTPKIT_SERVER_DOVECOT_AUTH_H

#include <event2/event.h>

typedef struct sk_dovecot_auth sk_dovecot_auth;

/* Mechanisms this server can pass on (bits of sk_dovecot_auth_mechs). */
#define SK_DOVECOT_MECH_PLAIN 0x01
#define SK_DOVECOT_MECH_LOGIN 0x02

/* A client of the socket at path on base; connects when started. */
sk_dovecot_auth *sk_dovecot_auth_new(struct event_base *base, const char *path);
/* Connect now (and again whenever the connection is lost). */
void sk_dovecot_auth_start(sk_dovecot_auth *da);
/* Close the connection; pending requests get their callback (-1) first. */
void sk_dovecot_auth_free(sk_dovecot_auth *da);

/*
 * The mechanisms to advertise: those Dovecot offered in its last handshake
 * (not "private") that this server can pass on, PLAIN and LOGIN, as
 * SK_DOVECOT_MECH_* bits. Before any handshake: both (an attempt then gets
 * 454 until Dovecot answers).
 */
unsigned sk_dovecot_auth_mechs(const sk_dovecot_auth *da);
/* 1 once a handshake is complete and the connection is up. */
int sk_dovecot_auth_ready(const sk_dovecot_auth *da);

typedef struct sk_dovecot_conn_info {
    int secured;           /* the SMTP connection is under TLS */
    const char *rip, *lip; /* client and local address (NULL: unknown) */
    unsigned rport, lport;
} sk_dovecot_conn_info;

/*
 * The verdict of one request, on the loop thread: 1 valid, 0 invalid (or
 * unknown user), -1 temporary failure (Dovecot unreachable, said "temp",
 * timed out, or the protocol broke). user: the name Dovecot returned with
 * OK (its canonical form), or NULL.
 */
typedef void (*sk_dovecot_auth_cb)(void *arg, int result, const char *user);

/*
 * Ask Dovecot about user and password (mechanism: PLAIN if Dovecot offers
 * it, else LOGIN). The callback always comes exactly once, later, from the
 * loop (never from inside this call). Returns 0, or -1 when out of memory
 * (no callback then). The password is copied and wiped after use.
 */
int sk_dovecot_auth_check(sk_dovecot_auth *da, const char *user, const char *password,
                          const sk_dovecot_conn_info *info, sk_dovecot_auth_cb cb, void *arg);

#endif
