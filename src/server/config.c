/*
 * config.c - loads and validates the server configuration file (libconfig
 * syntax, see smtpkit.conf(5)). Every problem is reported once, as
 * "FILE:LINE: message", and nothing half-loaded is ever returned.
 *
 * Enforces the RFC 5321 minima on the limits: at least 100 recipients per
 * transaction (4.5.3.1.8) and command lines of at least 512 octets
 * (4.5.3.1.4).
 */
#include "smtpkit/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "server/cidr.h"
#include "server/milter.h"
#include "server/pathutil.h"
#include "server/username_format.h"
#include "smtpkit/store.h"

typedef struct loader {
    const char *path;
    char *err;
    size_t errlen;
    int failed;
} loader;

static void fail(loader *L, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first error only: later ones are usually consequences. */
static void fail(loader *L, const config_setting_t *s, const char *fmt, ...)
{
    if (L->failed)
        return;
    L->failed = 1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *file = s ? config_setting_source_file(s) : NULL;
    int line = s ? config_setting_source_line(s) : 0;
    if (!file)
        file = L->path;
    if (line > 0)
        snprintf(L->err, L->errlen, "%s:%d: %s", file, line, msg);
    else
        snprintf(L->err, L->errlen, "%s: %s", file, msg);
}

static const char *type_name(int t)
{
    switch (t) {
    case CONFIG_TYPE_GROUP:
        return "a group { ... }";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a number with a fraction";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "true or false";
    case CONFIG_TYPE_ARRAY:
        return "an array [ ... ]";
    case CONFIG_TYPE_LIST:
        return "a list ( ... )";
    default:
        return "an unknown type";
    }
}

/* Reject settings that are not in `allowed` (a typo must not be ignored). */
static void check_members(loader *L, const config_setting_t *group, const char *const *allowed,
                          const char *where)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n && !L->failed; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        int ok = 0;
        for (size_t k = 0; allowed[k]; k++)
            if (name && !strcmp(name, allowed[k]))
                ok = 1;
        if (!ok)
            fail(L, m, "unknown setting '%s'%s%s", name ? name : "?", where ? " in " : "",
                 where ? where : "");
    }
}

static const config_setting_t *member(const config_setting_t *g, const char *name)
{
    return g ? config_setting_get_member(g, name) : NULL;
}

/* A string setting; *out untouched when absent. Returns 1 if present. */
static int get_string(loader *L, const config_setting_t *g, const char *name, char **out)
{
    const config_setting_t *s = member(g, name);
    if (!s || L->failed)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        fail(L, s, "'%s' must be a string, not %s", name, type_name(config_setting_type(s)));
        return 0;
    }
    const char *v = config_setting_get_string(s);
    if (!v || !*v) {
        fail(L, s, "'%s' must not be empty", name);
        return 0;
    }
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            fail(L, s, "'%s' contains a control character", name);
            return 0;
        }
    char *dup = strdup(v);
    if (!dup) {
        fail(L, s, "out of memory");
        return 0;
    }
    free(*out);
    *out = dup;
    return 1;
}

static void get_uint64(loader *L, const config_setting_t *g, const char *name,
                       unsigned long long min, unsigned long long max, unsigned long long *out)
{
    const config_setting_t *s = member(g, name);
    if (!s || L->failed)
        return;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        fail(L, s, "'%s' must be an integer, not %s", name, type_name(t));
        return;
    }
    long long v = config_setting_get_int64(s);
    if (v < 0 || (unsigned long long)v < min || (unsigned long long)v > max) {
        fail(L, s, "'%s' = %lld is out of range (%llu..%llu)", name, v, min, max);
        return;
    }
    *out = (unsigned long long)v;
}

static void get_unsigned(loader *L, const config_setting_t *g, const char *name, unsigned min,
                         unsigned max, unsigned *out)
{
    unsigned long long v = *out;
    get_uint64(L, g, name, min, max, &v);
    *out = (unsigned)v;
}

static void get_size(loader *L, const config_setting_t *g, const char *name, size_t min, size_t max,
                     size_t *out)
{
    unsigned long long v = *out;
    get_uint64(L, g, name, min, max, &v);
    *out = (size_t)v;
}

static void get_bool(loader *L, const config_setting_t *g, const char *name, int *out)
{
    const config_setting_t *s = member(g, name);
    if (!s || L->failed)
        return;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        fail(L, s, "'%s' must be true or false, not %s", name, type_name(config_setting_type(s)));
        return;
    }
    *out = config_setting_get_bool(s) ? 1 : 0;
}

/* A string or an array/list of strings, collected into a NULL-free vector. */
static void get_string_list(loader *L, const config_setting_t *s, const char *name, char ***out,
                            size_t *nout)
{
    if (!s || L->failed)
        return;
    int t = config_setting_type(s);
    int n = 1;
    if (t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST)
        n = config_setting_length(s);
    else if (t != CONFIG_TYPE_STRING) {
        fail(L, s, "'%s' must be a string or an array of strings, not %s", name, type_name(t));
        return;
    }
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) {
        fail(L, s, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *e =
            t == CONFIG_TYPE_STRING ? s : config_setting_get_elem(s, (unsigned)i);
        const char *str =
            config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
        if (!str || !*str) {
            fail(L, e, "'%s' must hold non-empty strings", name);
            break;
        }
        v[i] = strdup(str);
        if (!v[i]) {
            fail(L, e, "out of memory");
            break;
        }
    }
    if (L->failed) {
        for (int i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return;
    }
    *out = v;
    *nout = (size_t)n;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* A domain name: LDH labels separated by dots (RFC 5321 4.1.2 Domain), at
 * most 255 octets, labels at most 63. */
static int valid_domain(const char *d)
{
    size_t len = strlen(d), label = 0;
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch == '.') {
            if (label == 0 || d[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum(ch) || ch == '-') {
            if (label == 0 && ch == '-')
                return 0;
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && d[len - 1] != '-';
}

/* "local@domain" with a non-empty local part without controls or spaces
 * (quoted local parts with spaces are not supported in the tables) and a
 * valid domain. The domain is lower-cased in place. */
static int valid_address(char *a)
{
    char *at = strrchr(a, '@');
    if (!at || at == a || strlen(a) > 254)
        return 0;
    for (const char *p = a; p < at; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f || ch == '<' || ch == '>' || ch == ',')
            return 0;
    }
    if (at - a > 64)
        return 0;
    lower(at + 1);
    return valid_domain(at + 1);
}

static int parse_facility(const char *name)
{
    static const struct {
        const char *name;
        int value;
    } tab[] = {{"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
               {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
               {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
               {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(name, tab[i].name))
            return tab[i].value;
    return -1;
}

/* A path from the file: relative ones are taken against `base`. */
static void get_path(loader *L, const config_setting_t *g, const char *name, const char *base,
                     char **out)
{
    char *raw = NULL;
    if (!get_string(L, g, name, &raw))
        return;
    char *abs = sk_path_join(base, raw);
    free(raw);
    if (!abs) {
        fail(L, member(g, name), "'%s': path too long or out of memory", name);
        return;
    }
    free(*out);
    *out = abs;
}

static void load_limits(loader *L, sk_config *c, const config_setting_t *g)
{
    static const char *const allowed[] = {"message_size",
                                          "recipients",
                                          "line_length",
                                          "errors",
                                          "commands",
                                          "connections",
                                          "connections_per_ip",
                                          "command_timeout",
                                          "data_timeout",
                                          "command_deadline",
                                          "message_deadline",
                                          "shutdown_grace",
                                          "input_buffer",
                                          "output_buffer",
                                          "auth_failures",
                                          "auth_failure_window",
                                          "auth_failures_per_connection",
                                          "auth_failure_delay_ms",
                                          "received_headers",
                                          NULL};
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        fail(L, g, "'limits' must be a group { ... }");
        return;
    }
    check_members(L, g, allowed, "limits");
    get_size(L, g, "message_size", 1024, (size_t)1 << 40, &c->max_message_size);
    get_unsigned(L, g, "recipients", 100, 100000, &c->max_recipients);
    get_size(L, g, "line_length", 512, 65536, &c->max_line);
    get_unsigned(L, g, "errors", 1, 1000, &c->max_errors);
    get_unsigned(L, g, "commands", 10, 10000000, &c->max_commands);
    get_unsigned(L, g, "connections", 1, 1000000, &c->max_connections);
    get_unsigned(L, g, "connections_per_ip", 1, 1000000, &c->max_connections_per_ip);
    get_unsigned(L, g, "command_timeout", 1, 86400, &c->command_timeout);
    get_unsigned(L, g, "data_timeout", 1, 86400, &c->data_timeout);
    get_unsigned(L, g, "command_deadline", 0, 86400, &c->command_deadline);
    get_unsigned(L, g, "message_deadline", 0, 86400, &c->message_deadline);
    get_unsigned(L, g, "shutdown_grace", 0, 3600, &c->shutdown_grace);
    get_size(L, g, "input_buffer", 4096, (size_t)64 << 20, &c->input_buffer);
    get_size(L, g, "output_buffer", 4096, (size_t)64 << 20, &c->output_buffer);
    get_unsigned(L, g, "auth_failures", 1, 1000000, &c->auth_failures);
    get_unsigned(L, g, "auth_failure_window", 1, 86400 * 30, &c->auth_failure_window);
    get_unsigned(L, g, "auth_failures_per_connection", 1, 1000, &c->auth_failures_per_connection);
    get_unsigned(L, g, "auth_failure_delay_ms", 0, 60000, &c->auth_failure_delay_ms);
    /* RFC 5321 6.3 advises a large threshold, "normally at least 100";
     * the default is Postfix's hopcount_limit (50), which has served for
     * decades: real mail crosses far fewer hops. */
    get_unsigned(L, g, "received_headers", 1, 10000, &c->max_received_headers);
    if (!L->failed && c->input_buffer < c->max_line)
        fail(L, member(g, "input_buffer"), "input_buffer (%zu) must be at least line_length (%zu)",
             c->input_buffer, c->max_line);
}

/* One DNS server for dns_servers: "IP", "IP:PORT" or "[IPv6]:PORT". */
static int valid_dns_server(const char *v)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port = NULL;
    unsigned char bin[sizeof(struct in6_addr)];
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || (size_t)(close - v - 1) >= sizeof host)
            return 0;
        memcpy(host, v + 1, (size_t)(close - v - 1));
        host[close - v - 1] = '\0';
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            return 0;
        if (inet_pton(AF_INET6, host, bin) != 1)
            return 0;
    } else {
        const char *colon = strchr(v, ':');
        if (colon && strchr(colon + 1, ':'))
            return inet_pton(AF_INET6, v, bin) == 1; /* a bare IPv6 address */
        size_t hl = colon ? (size_t)(colon - v) : strlen(v);
        if (hl >= sizeof host)
            return 0;
        memcpy(host, v, hl);
        host[hl] = '\0';
        port = colon ? colon + 1 : NULL;
        if (inet_pton(AF_INET, host, bin) != 1)
            return 0;
    }
    if (port) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(port, &end, 10);
        if (!*port || *end || errno || n < 1 || n > 65535 || !isdigit((unsigned char)*port))
            return 0;
    }
    return 1;
}

/* A tls_policy string ("may", "encrypt", "verify"); *out untouched when
 * absent. */
static void get_tls_policy(loader *L, const config_setting_t *g, const char *name,
                           sk_tls_policy *out)
{
    char *s = NULL;
    if (get_string(L, g, name, &s)) {
        if (!strcmp(s, "may"))
            *out = SK_TLS_MAY;
        else if (!strcmp(s, "encrypt"))
            *out = SK_TLS_ENCRYPT;
        else if (!strcmp(s, "verify"))
            *out = SK_TLS_VERIFY;
        else
            fail(L, member(g, name), "%s = \"%s\": use \"may\", \"encrypt\" or \"verify\"", name,
                 s);
    }
    free(s);
}

/* delivery.tls_policies = ( { domain = "example.org"; policy = "verify"; },
 * { domain = ".example.net"; policy = "encrypt"; } ); */
static void load_tls_policies(loader *L, sk_delivery_config *d, const config_setting_t *list)
{
    static const char *const allowed[] = {"domain", "policy", NULL};
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        fail(L, list, "'tls_policies' must be a list ( { domain = ...; policy = ...; }, ... )");
        return;
    }
    int n = config_setting_length(list);
    d->tls_policies = calloc((size_t)n + 1, sizeof *d->tls_policies);
    if (!d->tls_policies) {
        fail(L, list, "out of memory");
        return;
    }
    for (int i = 0; i < n && !L->failed; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            fail(L, g, "each tls_policies entry must be a group { domain = ...; policy = ...; }");
            return;
        }
        check_members(L, g, allowed, "a tls_policies entry");
        sk_tls_policy_rule *r = &d->tls_policies[d->ntls_policies];
        if (!get_string(L, g, "domain", &r->domain)) {
            fail(L, g, "tls_policies entry without 'domain'");
            return;
        }
        d->ntls_policies++;
        lower(r->domain);
        if (!valid_domain(r->domain[0] == '.' ? r->domain + 1 : r->domain)) {
            fail(L, member(g, "domain"),
                 "tls_policies: '%s' is not a domain (or .domain for its subdomains)", r->domain);
            return;
        }
        if (!member(g, "policy")) {
            fail(L, g, "tls_policies entry %s without 'policy'", r->domain);
            return;
        }
        get_tls_policy(L, g, "policy", &r->policy);
        for (size_t k = 0; k + 1 < d->ntls_policies && !L->failed; k++)
            if (!strcmp(d->tls_policies[k].domain, r->domain))
                fail(L, member(g, "domain"), "tls_policies: '%s' is listed twice", r->domain);
    }
}

sk_tls_policy sk_delivery_tls_policy(const sk_delivery_config *d, const char *domain)
{
    size_t dl = domain ? strlen(domain) : 0, best = 0;
    sk_tls_policy p = d->tls_policy;
    for (size_t i = 0; i < d->ntls_policies; i++) {
        const char *rd = d->tls_policies[i].domain;
        size_t rl = strlen(rd);
        if (rd[0] == '.') {
            /* ".example.net": a proper subdomain; longer suffixes win */
            if (dl > rl && rl > best && !strcasecmp(domain + dl - rl, rd)) {
                best = rl;
                p = d->tls_policies[i].policy;
            }
        } else if (rl == dl && !strcasecmp(domain, rd)) {
            return d->tls_policies[i].policy; /* an exact match wins over any suffix */
        }
    }
    return p;
}

static void load_delivery(loader *L, sk_config *c, const config_setting_t *g)
{
    static const char *const allowed[] = {"enabled",
                                          "retry_min",
                                          "retry_max",
                                          "max_queue_lifetime",
                                          "delay_warning",
                                          "connections_per_destination",
                                          "max_connections",
                                          "messages_per_connection",
                                          "recipients_per_transaction",
                                          "tls_policy",
                                          "tls_policies",
                                          "timeout_greeting",
                                          "timeout_mail",
                                          "timeout_rcpt",
                                          "timeout_data",
                                          "timeout_data_block",
                                          "timeout_final_dot",
                                          "dns_servers",
                                          "smtp_port",
                                          NULL};
    sk_delivery_config *d = &c->delivery;
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        fail(L, g, "'delivery' must be a group { ... }");
        return;
    }
    check_members(L, g, allowed, "delivery");
    get_bool(L, g, "enabled", &d->enabled);
    get_unsigned(L, g, "retry_min", 1, 86400, &d->retry.min);
    get_unsigned(L, g, "retry_max", 1, 7 * 86400, &d->retry.max);
    get_unsigned(L, g, "max_queue_lifetime", 60, 100 * 86400, &d->retry.lifetime);
    get_unsigned(L, g, "delay_warning", 0, 100 * 86400, &d->retry.delay_warning);
    get_unsigned(L, g, "connections_per_destination", 1, 10000, &d->connections_per_destination);
    get_unsigned(L, g, "max_connections", 1, 100000, &d->max_connections);
    get_unsigned(L, g, "messages_per_connection", 1, 1000000, &d->messages_per_connection);
    /* RFC 5321 4.5.3.1.8: servers take at least 100; a client may send fewer */
    get_unsigned(L, g, "recipients_per_transaction", 1, 100000, &d->recipients_per_transaction);
    get_unsigned(L, g, "timeout_greeting", 1, 86400, &d->timeout_greeting);
    get_unsigned(L, g, "timeout_mail", 1, 86400, &d->timeout_mail);
    get_unsigned(L, g, "timeout_rcpt", 1, 86400, &d->timeout_rcpt);
    get_unsigned(L, g, "timeout_data", 1, 86400, &d->timeout_data);
    get_unsigned(L, g, "timeout_data_block", 1, 86400, &d->timeout_data_block);
    get_unsigned(L, g, "timeout_final_dot", 1, 86400, &d->timeout_final_dot);
    get_unsigned(L, g, "smtp_port", 1, 65535, &d->smtp_port);

    get_tls_policy(L, g, "tls_policy", &d->tls_policy);
    const config_setting_t *tp = member(g, "tls_policies");
    if (tp && !L->failed)
        load_tls_policies(L, d, tp);

    const config_setting_t *ds = member(g, "dns_servers");
    if (ds && !L->failed) {
        char **v = NULL;
        size_t n = 0;
        get_string_list(L, ds, "dns_servers", &v, &n);
        size_t len = 0;
        for (size_t i = 0; i < n && !L->failed; i++) {
            if (!valid_dns_server(v[i]))
                fail(L, ds, "dns_servers: '%s' is not IP, IP:PORT or [IPv6]:PORT", v[i]);
            len += strlen(v[i]) + 1;
        }
        if (!L->failed && n == 0)
            fail(L, ds, "dns_servers must name at least one server");
        if (!L->failed && !(d->dns_servers = calloc(1, len + 1)))
            fail(L, ds, "out of memory");
        for (size_t i = 0; i < n && !L->failed; i++) {
            if (i)
                strcat(d->dns_servers, ",");
            strcat(d->dns_servers, v[i]);
        }
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
    }

    if (L->failed)
        return;
    if (d->retry.min > d->retry.max)
        fail(L, member(g, member(g, "retry_min") ? "retry_min" : "retry_max"),
             "retry_min (%u) must not exceed retry_max (%u)", d->retry.min, d->retry.max);
    else if (d->retry.max > d->retry.lifetime)
        fail(L, member(g, member(g, "retry_max") ? "retry_max" : "max_queue_lifetime"),
             "retry_max (%u) must not exceed max_queue_lifetime (%u)", d->retry.max,
             d->retry.lifetime);
    else if (d->retry.delay_warning && d->retry.delay_warning >= d->retry.lifetime)
        fail(L, member(g, "delay_warning"),
             "delay_warning (%u) must be shorter than max_queue_lifetime (%u), or 0 for none",
             d->retry.delay_warning, d->retry.lifetime);
    else if (d->connections_per_destination > d->max_connections)
        fail(L,
             member(g, member(g, "connections_per_destination") ? "connections_per_destination"
                                                                : "max_connections"),
             "connections_per_destination (%u) must not exceed max_connections (%u)",
             d->connections_per_destination, d->max_connections);
}

/* Strip "[...]" around an IPv6 literal and check the address is numeric. */
static int normalise_listen_address(char **addr)
{
    char *a = *addr;
    size_t n = strlen(a);
    if (n >= 2 && a[0] == '[' && a[n - 1] == ']') {
        memmove(a, a + 1, n - 2);
        a[n - 2] = '\0';
    }
    unsigned char buf[16];
    return inet_pton(AF_INET, a, buf) == 1 || inet_pton(AF_INET6, a, buf) == 1;
}

/* "tempfail" or "accept" */
static int milter_action(loader *L, const config_setting_t *s, const char *v)
{
    if (!strcmp(v, "tempfail"))
        return 1;
    if (!strcmp(v, "accept"))
        return 0;
    fail(L, s, "milter default_action must be \"tempfail\" or \"accept\", not '%s'", v);
    return 1;
}

/* milters = [ "inet:127.0.0.1:8891", { socket = "unix:/run/f.sock";
 * default_action = "accept"; timeout = 10; } ]; */
static void load_milters(loader *L, sk_listener_config *lc, const config_setting_t *list)
{
    static const char *const allowed[] = {"socket", "default_action", "timeout", NULL};
    if (!list)
        return;
    int t = config_setting_type(list);
    if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
        fail(L, list, "'milters' must be a list [ \"inet:127.0.0.1:8891\", ... ]");
        return;
    }
    int n = config_setting_length(list);
    if (n > 16) {
        fail(L, list, "'milters': at most 16");
        return;
    }
    lc->milters = n ? calloc((size_t)n, sizeof *lc->milters) : NULL;
    if (n && !lc->milters) {
        fail(L, list, "out of memory");
        return;
    }
    for (int i = 0; i < n && !L->failed; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        sk_milter_config *m = &lc->milters[lc->nmilters++];
        m->line = config_setting_source_line(e);
        m->default_tempfail = -1;
        if (config_setting_type(e) == CONFIG_TYPE_STRING) {
            m->socket = strdup(config_setting_get_string(e));
            if (!m->socket)
                fail(L, e, "out of memory");
        } else if (config_setting_type(e) == CONFIG_TYPE_GROUP) {
            check_members(L, e, allowed, "a milter");
            if (!get_string(L, e, "socket", &m->socket) && !L->failed)
                fail(L, e, "milter without 'socket'");
            char *a = NULL;
            if (get_string(L, e, "default_action", &a))
                m->default_tempfail = milter_action(L, member(e, "default_action"), a);
            free(a);
            get_unsigned(L, e, "timeout", 1, 3600, &m->timeout);
        } else {
            fail(L, e, "each milter is a string \"inet:HOST:PORT\" or a group { socket = ...; }");
        }
        if (L->failed)
            return;
        struct sockaddr_storage ss;
        socklen_t sl;
        char why[160];
        if (sk_milter_parse_socket(m->socket, &ss, &sl, why, sizeof why) != 0)
            fail(L, e, "milter '%s': %s", m->socket, why);
    }
}

static void load_listeners(loader *L, sk_config *c, const config_setting_t *list)
{
    static const char *const allowed[] = {"address",
                                          "port",
                                          "starttls",
                                          "implicit_tls",
                                          "auth",
                                          "auth_requires_tls",
                                          "mail_requires_auth",
                                          "proxy_protocol",
                                          "milters",
                                          NULL};
    int t = config_setting_type(list);
    if (t != CONFIG_TYPE_LIST) {
        fail(L, list, "'listeners' must be a list ( { address = ...; port = ...; }, ... )");
        return;
    }
    int n = config_setting_length(list);
    if (n == 0) {
        fail(L, list, "'listeners' is empty: nothing to listen on");
        return;
    }
    c->listeners = calloc((size_t)n, sizeof *c->listeners);
    if (!c->listeners) {
        fail(L, list, "out of memory");
        return;
    }
    for (int i = 0; i < n && !L->failed; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        sk_listener_config *lc = &c->listeners[c->nlisteners++];
        lc->line = config_setting_source_line(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            fail(L, g, "each listener must be a group { address = ...; port = ...; }");
            return;
        }
        check_members(L, g, allowed, "a listener");
        if (!get_string(L, g, "address", &lc->address)) {
            fail(L, g, "listener without 'address'");
            return;
        }
        if (!normalise_listen_address(&lc->address)) {
            fail(L, member(g, "address"),
                 "listener address '%s' is not a numeric IPv4 or IPv6 address", lc->address);
            return;
        }
        if (!member(g, "port")) {
            fail(L, g, "listener without 'port'");
            return;
        }
        get_unsigned(L, g, "port", 1, 65535, &lc->port);
        sk_session_config *sc = &lc->session;
        sc->auth_requires_tls = 1;
        get_bool(L, g, "starttls", &sc->starttls_offered);
        get_bool(L, g, "implicit_tls", &sc->implicit_tls);
        get_bool(L, g, "auth", &sc->auth_offered);
        get_bool(L, g, "auth_requires_tls", &sc->auth_requires_tls);
        get_bool(L, g, "mail_requires_auth", &sc->mail_requires_auth);
        get_bool(L, g, "proxy_protocol", &lc->proxy_protocol);
        load_milters(L, lc, member(g, "milters"));
        if (L->failed)
            return;
        if (sc->starttls_offered && sc->implicit_tls)
            fail(L, g,
                 "listener %s:%u: starttls and implicit_tls exclude each other (an "
                 "implicit-TLS connection is encrypted from the start)",
                 lc->address, lc->port);
        else if (sc->mail_requires_auth && !sc->auth_offered)
            fail(L, g, "listener %s:%u: mail_requires_auth needs AUTH (auth = true)", lc->address,
                 lc->port);
        else if (sc->auth_offered && sc->auth_requires_tls && !sc->starttls_offered &&
                 !sc->implicit_tls)
            fail(L, g,
                 "listener %s:%u: auth requires TLS here (auth_requires_tls) but the listener "
                 "offers neither starttls nor implicit_tls",
                 lc->address, lc->port);
        for (size_t k = 0; k + 1 < c->nlisteners && !L->failed; k++)
            if (c->listeners[k].port == lc->port && !strcmp(c->listeners[k].address, lc->address))
                fail(L, g, "listener %s:%u is defined twice (first on line %d)", lc->address,
                     lc->port, c->listeners[k].line);
    }
}

static void load_domains(loader *L, sk_config *c, const config_setting_t *s)
{
    get_string_list(L, s, "domains", &c->domains, &c->ndomains);
    for (size_t i = 0; i < c->ndomains && !L->failed; i++) {
        lower(c->domains[i]);
        if (!valid_domain(c->domains[i]))
            fail(L, s, "domains: '%s' is not a valid domain name", c->domains[i]);
        for (size_t k = 0; k < i && !L->failed; k++)
            if (!strcmp(c->domains[i], c->domains[k]))
                fail(L, s, "domains: '%s' is listed twice", c->domains[i]);
    }
}

static int domain_is_local(const sk_config *c, const char *domain)
{
    for (size_t i = 0; i < c->ndomains; i++)
        if (!strcasecmp(c->domains[i], domain))
            return 1;
    return 0;
}

static void load_mailboxes(loader *L, sk_config *c, const config_setting_t *list)
{
    static const char *const allowed[] = {"address", "maildir", NULL};
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        fail(L, list, "'mailboxes' must be a list ( { address = ...; maildir = ...; }, ... )");
        return;
    }
    int n = config_setting_length(list);
    c->mailboxes = calloc((size_t)n + 1, sizeof *c->mailboxes);
    if (!c->mailboxes) {
        fail(L, list, "out of memory");
        return;
    }
    for (int i = 0; i < n && !L->failed; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            fail(L, g, "each mailbox must be a group { address = ...; maildir = ...; }");
            return;
        }
        sk_mailbox_config *m = &c->mailboxes[c->nmailboxes++];
        m->line = config_setting_source_line(g);
        check_members(L, g, allowed, "a mailbox");
        if (!get_string(L, g, "address", &m->address)) {
            fail(L, g, "mailbox without 'address'");
            return;
        }
        if (!valid_address(m->address)) {
            fail(L, member(g, "address"), "mailbox address '%s' is not local@domain", m->address);
            return;
        }
        const char *domain = strrchr(m->address, '@') + 1;
        if (!domain_is_local(c, domain)) {
            fail(L, member(g, "address"), "mailbox %s: domain '%s' is not in 'domains'", m->address,
                 domain);
            return;
        }
        if (member(g, "maildir")) {
            get_path(L, g, "maildir", c->mail_root, &m->maildir);
        } else {
            /* default: MAIL_ROOT/domain/localpart */
            size_t need = strlen(domain) + 1 + (size_t)(domain - 1 - m->address) + 1;
            char *rel = malloc(need);
            if (!rel) {
                fail(L, g, "out of memory");
                return;
            }
            snprintf(rel, need, "%s/%.*s", domain, (int)(domain - 1 - m->address), m->address);
            if (strchr(rel, '/') != strrchr(rel, '/') || strstr(rel, "/..") || strstr(rel, "/.")) {
                free(rel);
                fail(L, g, "mailbox %s: the local part cannot name a directory; set 'maildir'",
                     m->address);
                return;
            }
            m->maildir = sk_path_join(c->mail_root, rel);
            free(rel);
            if (!m->maildir)
                fail(L, g, "out of memory");
        }
    }
}

static void load_aliases(loader *L, sk_config *c, const config_setting_t *list)
{
    static const char *const allowed[] = {"address", "to", NULL};
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        fail(L, list, "'aliases' must be a list ( { address = ...; to = ...; }, ... )");
        return;
    }
    int n = config_setting_length(list);
    c->aliases = calloc((size_t)n + 1, sizeof *c->aliases);
    if (!c->aliases) {
        fail(L, list, "out of memory");
        return;
    }
    for (int i = 0; i < n && !L->failed; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            fail(L, g, "each alias must be a group { address = ...; to = ...; }");
            return;
        }
        sk_alias_config *a = &c->aliases[c->naliases++];
        a->line = config_setting_source_line(g);
        check_members(L, g, allowed, "an alias");
        if (!get_string(L, g, "address", &a->address)) {
            fail(L, g, "alias without 'address'");
            return;
        }
        if (!valid_address(a->address)) {
            fail(L, member(g, "address"), "alias address '%s' is not local@domain", a->address);
            return;
        }
        if (!domain_is_local(c, strrchr(a->address, '@') + 1)) {
            fail(L, member(g, "address"), "alias %s: domain '%s' is not in 'domains'", a->address,
                 strrchr(a->address, '@') + 1);
            return;
        }
        if (!member(g, "to")) {
            fail(L, g, "alias %s without 'to'", a->address);
            return;
        }
        get_string_list(L, member(g, "to"), "to", &a->targets, &a->ntargets);
        if (!L->failed && a->ntargets == 0)
            fail(L, member(g, "to"), "alias %s: 'to' is empty", a->address);
        for (size_t k = 0; k < a->ntargets && !L->failed; k++)
            if (!valid_address(a->targets[k]))
                fail(L, member(g, "to"), "alias %s: target '%s' is not local@domain", a->address,
                     a->targets[k]);
    }
}

static void load_catchalls(loader *L, sk_config *c, const config_setting_t *list)
{
    static const char *const allowed[] = {"domain", "to", NULL};
    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        fail(L, list, "'catch_all' must be a list ( { domain = ...; to = ...; }, ... )");
        return;
    }
    int n = config_setting_length(list);
    c->catchalls = calloc((size_t)n + 1, sizeof *c->catchalls);
    if (!c->catchalls) {
        fail(L, list, "out of memory");
        return;
    }
    for (int i = 0; i < n && !L->failed; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            fail(L, g, "each catch_all entry must be a group { domain = ...; to = ...; }");
            return;
        }
        sk_catchall_config *ca = &c->catchalls[c->ncatchalls++];
        ca->line = config_setting_source_line(g);
        check_members(L, g, allowed, "a catch_all entry");
        if (!get_string(L, g, "domain", &ca->domain) || !get_string(L, g, "to", &ca->target)) {
            fail(L, g, "a catch_all entry needs 'domain' and 'to'");
            return;
        }
        lower(ca->domain);
        if (!domain_is_local(c, ca->domain))
            fail(L, member(g, "domain"), "catch_all: domain '%s' is not in 'domains'", ca->domain);
        else if (!valid_address(ca->target))
            fail(L, member(g, "to"), "catch_all for %s: '%s' is not local@domain", ca->domain,
                 ca->target);
        for (size_t k = 0; k + 1 < c->ncatchalls && !L->failed; k++)
            if (!strcmp(c->catchalls[k].domain, ca->domain))
                fail(L, g, "catch_all: domain '%s' has two entries", ca->domain);
    }
}

/* TLS and AUTH settings, and the listeners that depend on them. */
static void load_tls_auth(loader *L, sk_config *c, const config_setting_t *root)
{
    get_path(L, root, "tls_certificate", c->dir, &c->tls_certificate);
    get_path(L, root, "tls_key", c->dir, &c->tls_key);
    get_bool(L, root, "tls_generate_if_missing", &c->tls_generate_if_missing);
    get_string(L, root, "tls_ciphers", &c->tls_ciphers);
    get_string(L, root, "tls_ciphersuites", &c->tls_ciphersuites);
    char *s = NULL;
    if (get_string(L, root, "tls_min_version", &s)) {
        if (!strcmp(s, "TLSv1.2"))
            c->tls_min_version = 12;
        else if (!strcmp(s, "TLSv1.3"))
            c->tls_min_version = 13;
        else
            fail(L, member(root, "tls_min_version"),
                 "tls_min_version = \"%s\": use \"TLSv1.2\" or \"TLSv1.3\"", s);
    }
    free(s);
    get_path(L, root, "passwd_file", c->dir, &c->passwd_file);
    get_path(L, root, "dovecot_auth", c->dir, &c->dovecot_auth);
    if (get_string(L, root, "auth_username_format", &c->auth_username_format)) {
        const char *why = sk_username_format_check(c->auth_username_format);
        if (why)
            fail(L, member(root, "auth_username_format"), "%s", why);
    }
    get_bool(L, root, "sender_must_match_login", &c->sender_must_match_login);
    if (L->failed)
        return;
    if (c->passwd_file && c->dovecot_auth)
        fail(L, member(root, "dovecot_auth"),
             "passwd_file and dovecot_auth both set: AUTH is checked by one of them");
    else if (c->dovecot_auth && c->auth_username_format)
        fail(L, member(root, "auth_username_format"),
             "auth_username_format is for passwd_file; with dovecot_auth, Dovecot's own "
             "auth_username_format applies");
    if (L->failed)
        return;
    if (!c->tls_certificate != !c->tls_key)
        fail(L, member(root, c->tls_certificate ? "tls_certificate" : "tls_key"),
             "tls_certificate and tls_key go together: set both or neither");
    const config_setting_t *list = member(root, "listeners");
    for (size_t i = 0; i < c->nlisteners && !L->failed; i++) {
        const sk_listener_config *lc = &c->listeners[i];
        const sk_session_config *sc = &lc->session;
        const config_setting_t *g = list ? config_setting_get_elem(list, (unsigned)i) : NULL;
        if ((sc->starttls_offered || sc->implicit_tls) && !c->tls_certificate)
            fail(L, g, "listener %s:%u uses TLS but tls_certificate and tls_key are not set",
                 lc->address, lc->port);
        else if (sc->auth_offered && !c->passwd_file && !c->dovecot_auth)
            fail(L, g, "listener %s:%u offers AUTH but neither passwd_file nor dovecot_auth is set",
                 lc->address, lc->port);
    }
}

/* log = "journal": only where the build has libsystemd. */
static void load_log_journal(loader *L, sk_config *c, const config_setting_t *s)
{
#ifdef SK_HAVE_LIBSYSTEMD
    (void)L;
    (void)s;
    c->log_target = SK_LOG_JOURNAL;
#else
    (void)c;
    fail(L, s,
         "log = \"journal\": this smtpkit was built without libsystemd (install "
         "libsystemd-dev and rebuild), use \"stderr\" under systemd instead");
#endif
}

/* log = "/path": relative paths against the file's directory. */
static void load_log_file(loader *L, sk_config *c, const config_setting_t *s, const char *path)
{
    char *abs = sk_path_join(c->dir, path);
    if (!abs) {
        fail(L, s, "'log': path too long or out of memory");
        return;
    }
    free(c->log_file);
    c->log_file = abs;
    c->log_target = SK_LOG_FILE;
}

/* The PROXY protocol: trusted proxies, checked here so a typo is a
 * FILE:LINE error, and the listeners that need them. */
static void load_proxy(loader *L, sk_config *c, const config_setting_t *root)
{
    const config_setting_t *nets = member(root, "proxy_networks");
    get_string_list(L, nets, "proxy_networks", &c->proxy_networks, &c->nproxy_networks);
    for (size_t i = 0; i < c->nproxy_networks && !L->failed; i++) {
        sk_cidr net;
        const char *why = NULL;
        if (sk_cidr_parse(c->proxy_networks[i], &net, &why) < 0)
            fail(L, nets, "proxy_networks: '%s': %s", c->proxy_networks[i], why);
    }
    get_unsigned(L, root, "proxy_timeout", 1, 300, &c->proxy_timeout);
    const config_setting_t *list = member(root, "listeners");
    for (size_t i = 0; i < c->nlisteners && !L->failed; i++) {
        const sk_listener_config *lc = &c->listeners[i];
        if (lc->proxy_protocol && !c->nproxy_networks)
            fail(L, list ? config_setting_get_elem(list, (unsigned)i) : NULL,
                 "listener %s:%u: proxy_protocol needs proxy_networks (the proxies allowed to "
                 "send the header)",
                 lc->address, lc->port);
    }
}

/* Settings for running under a service manager or init script. */
static void load_service(loader *L, sk_config *c, const config_setting_t *root)
{
    get_path(L, root, "pid_file", c->dir, &c->pid_file);
    /* metrics = "ADDRESS:PORT" ("[::1]:9325" for IPv6) */
    char *m = NULL;
    if (!get_string(L, root, "metrics", &m))
        return;
    char *colon = strrchr(m, ':');
    char *port = colon ? colon + 1 : NULL;
    if (colon)
        *colon = '\0';
    unsigned long p = 0;
    char *end = NULL;
    if (port && *port >= '1' && *port <= '9')
        p = strtoul(port, &end, 10);
    /* an IPv6 address needs its brackets: "::1:9325" is itself an address */
    int v6_bare = colon && m[0] != '[' && strchr(m, ':');
    if (!port || !end || *end || p > 65535 || v6_bare || !normalise_listen_address(&m)) {
        fail(L, member(root, "metrics"),
             "metrics: use \"ADDRESS:PORT\" with a numeric address, e.g. \"127.0.0.1:9325\" or "
             "\"[::1]:9325\"");
        free(m);
        return;
    }
    c->metrics_address = m;
    c->metrics_port = (unsigned)p;
}

static void set_defaults(sk_config *c)
{
    c->log_target = SK_LOG_STDERR;
    c->syslog_facility = LOG_MAIL;
    c->commit_threads = 2;
    c->lmtp_connections = 10; /* Dovecot 2.4: 10 concurrent deliveries per user */
    c->max_message_size = 10 * 1024 * 1024;
    c->max_recipients = 100;
    c->max_line = 512;
    c->max_errors = 20;
    c->max_commands = 10000;
    c->max_received_headers = 50;
    c->max_connections = 1000;
    c->max_connections_per_ip = 20;
    c->command_timeout = 300;
    c->data_timeout = 180;
    c->command_deadline = 300;
    c->message_deadline = 3600;
    c->shutdown_grace = 30;
    c->input_buffer = 64 * 1024;
    c->output_buffer = 64 * 1024;
    c->bare_policy = SK_BARE_REJECT;
    c->tls_min_version = 12;
    c->auth_failures = 10;
    c->auth_failure_window = 900;
    c->auth_failures_per_connection = 3;
    c->auth_failure_delay_ms = 1000;
    c->proxy_timeout = 10;
    c->milter_default_tempfail = 1;
    c->milter_timeout = 30;
    sk_retry_policy_default(&c->delivery.retry);
    c->delivery.connections_per_destination = 20;
    c->delivery.max_connections = 100;
    c->delivery.messages_per_connection = 100;
    c->delivery.recipients_per_transaction = 50;
    c->delivery.enabled = 1;
    c->delivery.tls_policy = SK_TLS_MAY;
    c->delivery.timeout_greeting = 300;
    c->delivery.timeout_mail = 300;
    c->delivery.timeout_rcpt = 300;
    c->delivery.timeout_data = 120;
    c->delivery.timeout_data_block = 180;
    c->delivery.timeout_final_dot = 600;
    c->delivery.smtp_port = 25;
}

static void load_root(loader *L, sk_config *c, const config_setting_t *root)
{
    static const char *const allowed[] = {"server_name",
                                          "user",
                                          "mail_root",
                                          "spool_dir",
                                          "relay_queue",
                                          "log",
                                          "syslog_facility",
                                          "postmaster",
                                          "local_part_case_sensitive",
                                          "forward_notify",
                                          "commit_threads",
                                          "lmtp",
                                          "lmtp_connections",
                                          "bare_lf",
                                          "vrfy_discloses",
                                          "expn",
                                          "limits",
                                          "delivery",
                                          "listeners",
                                          "domains",
                                          "mailboxes",
                                          "aliases",
                                          "catch_all",
                                          "trusted_networks",
                                          "tls_certificate",
                                          "tls_key",
                                          "tls_generate_if_missing",
                                          "tls_min_version",
                                          "tls_ciphers",
                                          "tls_ciphersuites",
                                          "passwd_file",
                                          "dovecot_auth",
                                          "auth_username_format",
                                          "sender_must_match_login",
                                          "proxy_networks",
                                          "proxy_timeout",
                                          "milter_default_action",
                                          "milter_timeout",
                                          "pid_file",
                                          "metrics",
                                          NULL};
    check_members(L, root, allowed, NULL);

    if (!get_string(L, root, "server_name", &c->server_name) && !L->failed) {
        char host[256];
        if (gethostname(host, sizeof host - 1) != 0)
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        c->server_name = strdup(host);
        if (!c->server_name)
            fail(L, NULL, "out of memory");
    }
    if (!L->failed && c->server_name && !valid_domain(c->server_name))
        fail(L, member(root, "server_name"),
             "server_name '%s' is not a domain name (RFC 5321 4.1.2)", c->server_name);
    get_string(L, root, "user", &c->user);

    if (!member(root, "mail_root") && !L->failed)
        fail(L, NULL, "'mail_root' is required (the directory that holds the mailboxes)");
    get_path(L, root, "mail_root", c->dir, &c->mail_root);
    if (member(root, "spool_dir"))
        get_path(L, root, "spool_dir", c->dir, &c->spool_dir);
    else if (!L->failed && !(c->spool_dir = sk_path_join(c->mail_root, ".spool")))
        fail(L, NULL, "out of memory");
    get_path(L, root, "relay_queue", c->dir, &c->relay_queue);

    char *s = NULL;
    if (get_string(L, root, "log", &s)) {
        if (!strcmp(s, "stderr"))
            c->log_target = SK_LOG_STDERR;
        else if (!strcmp(s, "syslog"))
            c->log_target = SK_LOG_SYSLOG;
        else if (!strcmp(s, "journal"))
            load_log_journal(L, c, member(root, "log"));
        else if (s[0] == '/' || !strncmp(s, "./", 2) || !strncmp(s, "../", 3))
            load_log_file(L, c, member(root, "log"), s);
        else
            fail(L, member(root, "log"),
                 "log = \"%s\": use \"stderr\" or \"syslog\" (or \"journal\", or a file path "
                 "such as \"/var/log/smtpkit.log\" or \"./smtpkit.log\")",
                 s);
    }
    free(s);
    s = NULL;
    if (get_string(L, root, "syslog_facility", &s)) {
        c->syslog_facility = parse_facility(s);
        if (c->syslog_facility < 0)
            fail(L, member(root, "syslog_facility"),
                 "syslog_facility \"%s\": use mail, daemon, user or local0..local7", s);
    }
    free(s);
    s = NULL;
    if (get_string(L, root, "bare_lf", &s)) {
        if (!strcmp(s, "reject"))
            c->bare_policy = SK_BARE_REJECT;
        else if (!strcmp(s, "normalise") || !strcmp(s, "normalize"))
            c->bare_policy = SK_BARE_NORMALISE;
        else
            fail(L, member(root, "bare_lf"), "bare_lf = \"%s\": use \"reject\" or \"normalise\"",
                 s);
    }
    free(s);
    get_bool(L, root, "local_part_case_sensitive", &c->local_part_case_sensitive);
    get_bool(L, root, "forward_notify", &c->forward_notify);
    get_bool(L, root, "vrfy_discloses", &c->vrfy_discloses);
    get_bool(L, root, "expn", &c->expn_enabled);
    get_unsigned(L, root, "commit_threads", 1, 64, &c->commit_threads);
    if (get_string(L, root, "lmtp", &c->lmtp)) {
        char why[300];
        if (sk_store_lmtp_target_ok(c->lmtp, why, sizeof why) < 0)
            fail(L, member(root, "lmtp"), "%s", why);
    }
    get_unsigned(L, root, "lmtp_connections", 1, 64, &c->lmtp_connections);

    const config_setting_t *g;
    if ((g = member(root, "limits")) && !L->failed)
        load_limits(L, c, g);
    if ((g = member(root, "delivery")) && !L->failed)
        load_delivery(L, c, g);
    if (!L->failed && !(g = member(root, "listeners")))
        fail(L, NULL, "'listeners' is required");
    if (!L->failed)
        load_listeners(L, c, g);
    if ((g = member(root, "domains")) && !L->failed)
        load_domains(L, c, g);
    if ((g = member(root, "mailboxes")) && !L->failed)
        load_mailboxes(L, c, g);
    if ((g = member(root, "aliases")) && !L->failed)
        load_aliases(L, c, g);
    if ((g = member(root, "catch_all")) && !L->failed)
        load_catchalls(L, c, g);
    if ((g = member(root, "trusted_networks")) && !L->failed) {
        c->trusted_line = config_setting_source_line(g);
        get_string_list(L, g, "trusted_networks", &c->trusted_networks, &c->ntrusted);
    }
    if (get_string(L, root, "postmaster", &c->postmaster) && !valid_address(c->postmaster))
        fail(L, member(root, "postmaster"), "postmaster '%s' is not local@domain", c->postmaster);
    load_tls_auth(L, c, root);
    load_proxy(L, c, root);
    load_service(L, c, root);
    char *mda = NULL;
    if (get_string(L, root, "milter_default_action", &mda))
        c->milter_default_tempfail = milter_action(L, member(root, "milter_default_action"), mda);
    free(mda);
    get_unsigned(L, root, "milter_timeout", 1, 3600, &c->milter_timeout);

    /* Every listener's session settings share the global limits. */
    for (size_t i = 0; i < c->nlisteners && !L->failed; i++) {
        sk_session_config *sc = &c->listeners[i].session;
        sc->hostname = c->server_name;
        sc->max_message_size = c->max_message_size;
        sc->max_recipients = c->max_recipients;
        sc->max_line = c->max_line;
        sc->max_errors = c->max_errors;
        sc->max_commands = c->max_commands;
        sc->max_received_headers = c->max_received_headers;
        sc->bare_policy = c->bare_policy;
        sc->vrfy_discloses = c->vrfy_discloses;
        sc->expn_enabled = c->expn_enabled;
    }
}

sk_config *sk_config_load(const char *path, char *err, size_t errlen)
{
    loader L = {.path = path, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    sk_config *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    set_defaults(c);
    c->path = strdup(path);
    c->dir = sk_path_dir_abs(path);
    if (!c->path || !c->dir) {
        snprintf(err, errlen, "%s: cannot resolve the file's directory: %s", path,
                 strerror(errno ? errno : ENOMEM));
        sk_config_free(c);
        return NULL;
    }

    config_t lc;
    config_init(&lc);
    config_set_include_dir(&lc, c->dir);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
        else
            snprintf(err, errlen, "%s:%d: %s",
                     config_error_file(&lc) ? config_error_file(&lc) : path, config_error_line(&lc),
                     config_error_text(&lc));
        config_destroy(&lc);
        sk_config_free(c);
        return NULL;
    }
    load_root(&L, c, config_root_setting(&lc));
    config_destroy(&lc);
    if (L.failed) {
        sk_config_free(c);
        return NULL;
    }
    return c;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sk_config_free(sk_config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->dir);
    free(c->server_name);
    free(c->user);
    free(c->mail_root);
    free(c->spool_dir);
    free(c->relay_queue);
    free(c->lmtp);
    free(c->postmaster);
    for (size_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].address);
        for (size_t k = 0; k < c->listeners[i].nmilters; k++)
            free(c->listeners[i].milters[k].socket);
        free(c->listeners[i].milters);
    }
    free(c->listeners);
    free_strv(c->domains, c->ndomains);
    for (size_t i = 0; i < c->nmailboxes; i++) {
        free(c->mailboxes[i].address);
        free(c->mailboxes[i].maildir);
    }
    free(c->mailboxes);
    for (size_t i = 0; i < c->naliases; i++) {
        free(c->aliases[i].address);
        free_strv(c->aliases[i].targets, c->aliases[i].ntargets);
    }
    free(c->aliases);
    for (size_t i = 0; i < c->ncatchalls; i++) {
        free(c->catchalls[i].domain);
        free(c->catchalls[i].target);
    }
    free(c->catchalls);
    free_strv(c->trusted_networks, c->ntrusted);
    free(c->tls_certificate);
    free(c->tls_key);
    free(c->tls_ciphers);
    free(c->tls_ciphersuites);
    free(c->passwd_file);
    free(c->dovecot_auth);
    free(c->auth_username_format);
    free_strv(c->proxy_networks, c->nproxy_networks);
    free(c->pid_file);
    free(c->log_file);
    free(c->metrics_address);
    free(c->delivery.dns_servers);
    for (size_t i = 0; i < c->delivery.ntls_policies; i++)
        free(c->delivery.tls_policies[i].domain);
    free(c->delivery.tls_policies);
    free(c);
}
