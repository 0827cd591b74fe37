/*
 * probe.h - what `smtpkit probe` keeps about each host it probes, shared by
 * the files of the subcommand: cmd_probe.c (options, MX order, the
 * dialogue, output for people), probe_json.c (--json) and probe_cert.c
 * (the certificate finding).
 */
#ifndef SMTPKIT_CLI_PROBE_H
#define SMTPKIT_CLI_PROBE_H

#include "client/json_writer.h"
#include "smtpkit/client.h"

#define PROBE_MAX_RCPTS 32
#define PROBE_MAX_REPLIES 64

/* Exit status when the dialogue went well but the certificate cannot be
 * verified (without --verify, which makes it 4, or --insecure, 0). */
#define SK_EXIT_CERT 7

typedef struct probe_opts {
    int advanced, json, tls, no_starttls, all, force_mx;
    int lmtp;     /* LHLO instead of EHLO (RFC 2033): --lmtp, port 24, unix: */
    int verify;   /* a certificate that cannot be verified ends the dialogue (exit 4) */
    int insecure; /* ... is still reported but leaves the exit status alone */
    int timeout_ms;
    int port; /* -1: default */
    const char *helo, *from, *dns_server, *cafile;
    const char *rcpts[PROBE_MAX_RCPTS];
    size_t nrcpts;
} probe_opts;

typedef struct reply_rec {
    char cmd[12]; /* the command it answers */
    sk_reply r;   /* a deep copy; lines freed by the caller */
} reply_rec;

/* What happened with one MX host (or the one host given). */
typedef struct host_result {
    char name[256];
    char addr[64];
    int port;
    int preference; /* -2: not from MX; -1: implicit MX */
    sk_client *c;
    reply_rec rep[PROBE_MAX_REPLIES];
    size_t nrep;
    int connected, greeted;
    int esmtp;
    sk_txn txn;
    sk_rcpt_result rres[PROBE_MAX_RCPTS];
    int did_txn;
    int quit_sent; /* the dialogue ended with QUIT */
    int exit;      /* the dialogue's outcome; the certificate is judged apart */
    char error[600];
    char note[300];
    void *hook; /* the hook_arg given to the client */
} host_result;

/* probe_cert.c: the certificate finding of one host. */
/* 1 if TLS was set up and the certificate cannot be trusted. */
int probe_cert_problem(const host_result *h);
/* The host's exit status with the certificate taken into account. */
int probe_host_exit(const probe_opts *o, const host_result *h);
/* One line: "the certificate of NAME cannot be verified: REASONS". */
void probe_cert_summary(const host_result *h, char *out, size_t n);
/* The finding for people, a block of lines. */
void probe_cert_print(const probe_opts *o, const host_result *h);
/* The "findings" array member of a host's JSON object. */
void probe_cert_json(sk_json *j, const probe_opts *o, const host_result *h);

/* probe_json.c: one host as a JSON object. */
void probe_json_host(sk_json *j, const probe_opts *o, const host_result *h);

#endif
