/*
 * probe_cert.c - the certificate finding of `smtpkit probe`.
 *
 * Mail on port 25 uses opportunistic TLS (RFC 3207 4.1, RFC 7435): sending
 * MTAs deliver over self-signed, expired or mismatched certificates, so a
 * check that stopped there would hide the rest of the dialogue. Probe goes
 * on and reports the certificate as a finding: which problems (self-signed,
 * unknown CA, expired, not yet valid, name mismatch: from OpenSSL's
 * X509_V_ERR_* codes and the RFC 6125 name check), what they mean for
 * senders, and an exit status of its own (7). --verify makes the finding
 * fatal (the dialogue stops, exit 4); --insecure, its inverse, keeps it out
 * of the exit status.
 */
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "cli/probe.h"

static const unsigned problem_bits[] = {
    SK_CERT_NO_CERT,       SK_CERT_SELF_SIGNED,   SK_CERT_UNKNOWN_CA, SK_CERT_EXPIRED,
    SK_CERT_NOT_YET_VALID, SK_CERT_NAME_MISMATCH, SK_CERT_OTHER};
#define NBITS (sizeof problem_bits / sizeof problem_bits[0])

static const sk_tls_info *tls_of(const host_result *h)
{
    if (!h->c)
        return NULL;
    const sk_tls_info *t = sk_client_tls(h->c);
    return t->active ? t : NULL;
}

int probe_cert_problem(const host_result *h)
{
    const sk_tls_info *t = tls_of(h);
    return t && t->problems;
}

int probe_host_exit(const probe_opts *o, const host_result *h)
{
    if (h->exit != SK_EXIT_OK)
        return h->exit;
    if (probe_cert_problem(h) && !o->insecure)
        return SK_EXIT_CERT;
    return SK_EXIT_OK;
}

/* In words for people, by SK_CERT_* bit (the JSON uses sk_cert_problem_name). */
static const char *problem_words(unsigned bit)
{
    switch (bit) {
    case SK_CERT_NO_CERT:
        return "no certificate";
    case SK_CERT_SELF_SIGNED:
        return "self-signed";
    case SK_CERT_UNKNOWN_CA:
        return "unknown CA";
    case SK_CERT_EXPIRED:
        return "expired";
    case SK_CERT_NOT_YET_VALID:
        return "not yet valid";
    case SK_CERT_NAME_MISMATCH:
        return "name mismatch";
    default:
        return "other verification error";
    }
}

/* "self-signed, name mismatch" */
static void reasons_text(unsigned problems, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NBITS; i++) {
        if (!(problems & problem_bits[i]))
            continue;
        int w = snprintf(out + used, n - used, "%s%s", used ? ", " : "",
                         problem_words(problem_bits[i]));
        if (w < 0 || (size_t)w >= n - used)
            return;
        used += (size_t)w;
    }
}

void probe_cert_summary(const host_result *h, char *out, size_t n)
{
    const sk_tls_info *t = tls_of(h);
    char why[200];
    reasons_text(t ? t->problems : 0, why, sizeof why);
    snprintf(out, n, "the TLS certificate of %s cannot be verified: %s", h->name, why);
}

static const char *severity(const probe_opts *o, const host_result *h)
{
    if (h->exit == SK_EXIT_TLS && o->verify)
        return "fatal";
    return o->insecure ? "ignored" : "warning";
}

void probe_cert_print(const probe_opts *o, const host_result *h)
{
    const sk_tls_info *t = tls_of(h);
    if (!t || !t->problems)
        return;
    char why[200];
    reasons_text(t->problems, why, sizeof why);
    printf("CERTIFICATE NOT VERIFIED: %s (%s): %s\n", h->name,
           h->addr[0] ? sk_client_peer(h->c) : "", why);
    printf("  why:     %s\n", t->verify_error);
    for (size_t i = 0; i < t->nerrors; i++) {
        const char *name = sk_x509_error_name(t->errors[i].code);
        printf("  %-8s %s (%d) at depth %d: %s\n", i ? "" : "OpenSSL:", name ? name : "X509_V_ERR",
               t->errors[i].code, t->errors[i].depth,
               X509_verify_cert_error_string(t->errors[i].code));
    }
    printf("  impact:  senders using opportunistic TLS (most MTAs on port 25) deliver anyway,\n"
           "           encrypted but without knowing who they talk to; senders that verify\n"
           "           (DANE, MTA-STS, submission clients) refuse\n");
    if (!strcmp(severity(o, h), "fatal"))
        printf("  result:  the dialogue stopped here (--verify); exit status 4\n");
    else if (o->insecure)
        printf("  result:  the dialogue went on; --insecure keeps this out of the exit status\n");
    else
        printf("  result:  the dialogue went on; exit status 7 (--verify makes this fatal,\n"
               "           --insecure ignores it)\n");
}

void probe_cert_json(sk_json *j, const probe_opts *o, const host_result *h)
{
    const sk_tls_info *t = tls_of(h);
    sk_json_key(j, "findings");
    sk_json_begin_array(j);
    if (t && t->problems) {
        char summary[400];
        probe_cert_summary(h, summary, sizeof summary);
        sk_json_begin_object(j);
        sk_json_kv_string(j, "kind", "certificate");
        sk_json_kv_string(j, "severity", severity(o, h));
        sk_json_kv_string(j, "message", summary);
        sk_json_key(j, "reasons");
        sk_json_begin_array(j);
        for (size_t i = 0; i < NBITS; i++)
            if (t->problems & problem_bits[i])
                sk_json_string(j, sk_cert_problem_name(problem_bits[i]));
        sk_json_end_array(j);
        sk_json_kv_string(j, "detail", t->verify_error);
        sk_json_key(j, "openssl_errors");
        sk_json_begin_array(j);
        for (size_t i = 0; i < t->nerrors; i++) {
            sk_json_begin_object(j);
            sk_json_kv_int(j, "code", t->errors[i].code);
            sk_json_kv_string(j, "name", sk_x509_error_name(t->errors[i].code));
            sk_json_kv_string(j, "text", X509_verify_cert_error_string(t->errors[i].code));
            sk_json_kv_int(j, "depth", t->errors[i].depth);
            sk_json_end_object(j);
        }
        sk_json_end_array(j);
        sk_json_kv_bool(j, "dialogue_continued", h->exit != SK_EXIT_TLS || !o->verify);
        sk_json_end_object(j);
    }
    sk_json_end_array(j);
}
