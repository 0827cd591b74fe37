/*
 * policy.c - recipient tables and the relay rule.
 *
 * RFC 5321 2.4: the local part is case-sensitive in principle, but a site
 * may (and nearly all do) treat it case-insensitively: configurable, default
 * insensitive. Domains are always compared case-insensitively (2.4).
 * RFC 5321 4.5.1: "postmaster" (bare, and at every local domain, any case)
 * is always accepted; it maps to the configured postmaster address, by
 * default the first mailbox. RFC 5321 3.6.2 / 3.9: no relaying except for
 * trusted networks and authenticated clients; relayed mail, and the copies
 * of aliases that point to other domains, go to the outbound queue under
 * `relay_queue` (a delivery names each remote address), and without a relay
 * queue nobody may relay.
 *
 * Aliases are expanded once, when the policy is built: loops, unknown
 * targets and forwarding without a relay queue are configuration errors,
 * never surprises during a session.
 */
#include "smtpkit/policy.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/cidr.h"

#define MAX_ALIAS_DEPTH 32

/* The resolved destinations of one address. */
typedef struct rset {
    const char **maildirs; /* interned in the policy */
    const char **boxes;    /* boxes[i]: the mailbox address maildirs[i] belongs to */
    size_t n;
    const char **remote; /* interned addresses in other domains, for the queue */
    size_t nremote;
    const char *forward_to; /* first target in another domain */
    int queued;
} rset;

typedef struct entry {
    char *key; /* normalised address */
    int line;
    int is_alias;
    const sk_alias_config *alias; /* targets, while resolving */
    int state;                    /* 0 unresolved, 1 resolving, 2 done */
    rset set;
} entry;

typedef struct catchall {
    char *domain;
    rset set;
} catchall;

struct sk_policy {
    int case_sensitive;
    int forward_notify;
    char **domains;
    size_t ndomains;
    entry *entries; /* sorted by key */
    size_t nentries;
    size_t nmailboxes, naliases;
    catchall *catchalls;
    size_t ncatchalls;
    rset postmaster;
    const char *relay_queue; /* interned, or NULL */
    sk_cidr *trusted;
    size_t ntrusted;
    char **strings; /* interned Maildir paths and forward addresses */
    size_t nstrings, capstrings;
    const char **dirs; /* the interned strings that are Maildirs */
    size_t ndirs;
};

/* Building context. */
typedef struct builder {
    sk_policy *p;
    const sk_config *cfg;
    char *err;
    size_t errlen;
    int failed;
} builder;

static void bfail(builder *B, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void bfail(builder *B, int line, const char *fmt, ...)
{
    if (B->failed)
        return;
    B->failed = 1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(B->err, B->errlen, "%s:%d: %s", B->cfg->path, line, msg);
    else
        snprintf(B->err, B->errlen, "%s: %s", B->cfg->path, msg);
}

/* One copy of each string; returns the policy's copy. */
static const char *intern(builder *B, const char *s)
{
    sk_policy *p = B->p;
    for (size_t i = 0; i < p->nstrings; i++)
        if (!strcmp(p->strings[i], s))
            return p->strings[i];
    if (p->nstrings == p->capstrings) {
        size_t ncap = p->capstrings ? p->capstrings * 2 : 16;
        char **v = realloc(p->strings, ncap * sizeof *v);
        if (!v) {
            bfail(B, 0, "out of memory");
            return NULL;
        }
        p->strings = v;
        p->capstrings = ncap;
    }
    char *d = strdup(s);
    if (!d) {
        bfail(B, 0, "out of memory");
        return NULL;
    }
    p->strings[p->nstrings++] = d;
    return d;
}

/* Intern a Maildir path and remember it in the list of all Maildirs. */
static const char *intern_dir(builder *B, const char *dir)
{
    sk_policy *p = B->p;
    const char *s = intern(B, dir);
    if (!s)
        return NULL;
    for (size_t i = 0; i < p->ndirs; i++)
        if (p->dirs[i] == s)
            return s;
    const char **v = realloc(p->dirs, (p->ndirs + 1) * sizeof *v);
    if (!v) {
        bfail(B, 0, "out of memory");
        return NULL;
    }
    v[p->ndirs++] = s;
    p->dirs = v;
    return s;
}

static void rset_add_maildir(builder *B, rset *r, const char *dir, const char *box)
{
    const char *s = intern_dir(B, dir);
    const char *b = s ? intern(B, box) : NULL;
    if (!s || !b)
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->maildirs[i] == s)
            return;
    const char **v = realloc(r->maildirs, (r->n + 1) * sizeof *v);
    if (!v) {
        bfail(B, 0, "out of memory");
        return;
    }
    r->maildirs = v;
    const char **w = realloc(r->boxes, (r->n + 1) * sizeof *w);
    if (!w) {
        bfail(B, 0, "out of memory");
        return;
    }
    r->boxes = w;
    v[r->n] = s;
    w[r->n++] = b;
}

static void rset_add_remote(builder *B, rset *r, const char *addr)
{
    const char *s = intern(B, addr);
    if (!s)
        return;
    for (size_t i = 0; i < r->nremote; i++)
        if (r->remote[i] == s)
            return;
    const char **v = realloc(r->remote, (r->nremote + 1) * sizeof *v);
    if (!v) {
        bfail(B, 0, "out of memory");
        return;
    }
    v[r->nremote++] = s;
    r->remote = v;
}

static void rset_merge(builder *B, rset *into, const rset *from)
{
    for (size_t i = 0; i < from->n && !B->failed; i++)
        rset_add_maildir(B, into, from->maildirs[i], from->boxes[i]);
    for (size_t i = 0; i < from->nremote && !B->failed; i++)
        rset_add_remote(B, into, from->remote[i]);
    if (!into->forward_to)
        into->forward_to = from->forward_to;
    into->queued |= from->queued;
}

/* The local part without quotes, when quoting adds nothing ("a.b"@x is
 * a.b@x, RFC 5321 4.1.2); otherwise as given. Writes at most outlen. */
static int unquote_local(const char *lp, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    if (len >= 2 && lp[0] == '"' && lp[len - 1] == '"') {
        for (size_t i = 1; i + 1 < len; i++) {
            char ch = lp[i];
            if (ch == '\\' && i + 2 < len)
                ch = lp[++i];
            if (o + 1 >= outlen)
                return -1;
            out[o++] = ch;
        }
    } else {
        if (len >= outlen)
            return -1;
        memcpy(out, lp, len);
        o = len;
    }
    out[o] = '\0';
    return 0;
}

/* Normalised key "local@domain" into out; -1 if not local@domain or too long. */
static int make_key(int case_sensitive, const char *addr, char *out, size_t outlen,
                    const char **domain_out)
{
    const char *at = strrchr(addr, '@');
    if (!at || at == addr || !at[1])
        return -1;
    if (unquote_local(addr, (size_t)(at - addr), out, outlen) < 0)
        return -1;
    size_t ll = strlen(out);
    if (!case_sensitive)
        for (size_t i = 0; i < ll; i++)
            out[i] = (char)tolower((unsigned char)out[i]);
    size_t dl = strlen(at + 1);
    if (ll + 1 + dl + 1 > outlen)
        return -1;
    out[ll] = '@';
    for (size_t i = 0; i <= dl; i++)
        out[ll + 1 + i] = (char)tolower((unsigned char)at[1 + i]);
    if (domain_out)
        *domain_out = out + ll + 1;
    return 0;
}

static int is_postmaster_local(const char *key)
{
    return !strncasecmp(key, "postmaster@", 11);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static entry *find_entry(const sk_policy *p, const char *key)
{
    entry k = {.key = (char *)key};
    return bsearch(&k, p->entries, p->nentries, sizeof *p->entries, entry_cmp);
}

int sk_policy_is_local_domain(const sk_policy *p, const char *domain)
{
    for (size_t i = 0; i < p->ndomains; i++)
        if (!strcasecmp(p->domains[i], domain))
            return 1;
    return 0;
}

static const rset *find_catchall(const sk_policy *p, const char *domain)
{
    for (size_t i = 0; i < p->ncatchalls; i++)
        if (!strcasecmp(p->catchalls[i].domain, domain))
            return &p->catchalls[i].set;
    return NULL;
}

static void resolve_entry(builder *B, entry *e, int depth);

/* Resolve `addr` (as written in the configuration, at `line`) into r. */
static void resolve_addr(builder *B, const char *addr, int line, int depth, const char *via,
                         rset *r)
{
    sk_policy *p = B->p;
    if (depth > MAX_ALIAS_DEPTH) {
        bfail(B, line, "alias loop: %s refers back to itself", via);
        return;
    }
    char key[512];
    const char *domain;
    if (make_key(p->case_sensitive, addr, key, sizeof key, &domain) < 0) {
        bfail(B, line, "'%s' is not local@domain", addr);
        return;
    }
    if (!sk_policy_is_local_domain(p, domain)) {
        if (!p->relay_queue) {
            bfail(B, line,
                  "%s forwards to %s, which is not in a local domain: forwarding needs "
                  "'relay_queue', the outbound queue (see smtpkit.conf(5))",
                  via, addr);
            return;
        }
        rset_add_remote(B, r, addr);
        if (!r->forward_to)
            r->forward_to = intern(B, addr);
        r->queued = 1;
        return;
    }
    entry *e = find_entry(p, key);
    if (e) {
        resolve_entry(B, e, depth + 1);
        if (!B->failed)
            rset_merge(B, r, &e->set);
        return;
    }
    if (is_postmaster_local(key)) {
        if (!p->postmaster.n) {
            bfail(B, line, "%s refers to %s before the postmaster is known (alias loop?)", via,
                  addr);
            return;
        }
        rset_merge(B, r, &p->postmaster);
        return;
    }
    const rset *ca = find_catchall(p, domain);
    if (ca && (ca->n || ca->nremote)) {
        rset_merge(B, r, ca);
        return;
    }
    bfail(B, line, "%s: '%s' is not a configured mailbox or alias", via, addr);
}

static void resolve_entry(builder *B, entry *e, int depth)
{
    if (e->state == 2 || B->failed)
        return;
    if (e->state == 1) {
        bfail(B, e->line, "alias loop through %s", e->key);
        return;
    }
    e->state = 1;
    char via[600];
    snprintf(via, sizeof via, "alias %s", e->key);
    for (size_t i = 0; i < e->alias->ntargets && !B->failed; i++)
        resolve_addr(B, e->alias->targets[i], e->line, depth, via, &e->set);
    e->state = 2;
}

static int add_entry(builder *B, const char *addr, int line, const sk_alias_config *alias)
{
    sk_policy *p = B->p;
    char key[512];
    if (make_key(p->case_sensitive, addr, key, sizeof key, NULL) < 0) {
        bfail(B, line, "'%s' is not local@domain", addr);
        return -1;
    }
    entry *e = &p->entries[p->nentries];
    memset(e, 0, sizeof *e);
    e->key = strdup(key);
    if (!e->key) {
        bfail(B, line, "out of memory");
        return -1;
    }
    p->nentries++;
    e->line = line;
    e->is_alias = alias != NULL;
    e->alias = alias;
    e->state = alias ? 0 : 2;
    return 0;
}

static void build_tables(builder *B)
{
    sk_policy *p = B->p;
    const sk_config *c = B->cfg;
    size_t total = c->nmailboxes + c->naliases;
    p->entries = calloc(total + 1, sizeof *p->entries);
    if (!p->entries) {
        bfail(B, 0, "out of memory");
        return;
    }
    for (size_t i = 0; i < c->nmailboxes && !B->failed; i++) {
        if (add_entry(B, c->mailboxes[i].address, c->mailboxes[i].line, NULL) == 0)
            rset_add_maildir(B, &p->entries[p->nentries - 1].set, c->mailboxes[i].maildir,
                             c->mailboxes[i].address);
    }
    for (size_t i = 0; i < c->naliases && !B->failed; i++)
        add_entry(B, c->aliases[i].address, c->aliases[i].line, &c->aliases[i]);
    if (B->failed)
        return;
    p->nmailboxes = c->nmailboxes;
    p->naliases = c->naliases;
    qsort(p->entries, p->nentries, sizeof *p->entries, entry_cmp);
    for (size_t i = 1; i < p->nentries; i++)
        if (!strcmp(p->entries[i].key, p->entries[i - 1].key)) {
            int a = p->entries[i - 1].line, b = p->entries[i].line;
            bfail(B, a > b ? a : b, "%s is defined twice (lines %d and %d)%s", p->entries[i].key,
                  a < b ? a : b, a > b ? a : b,
                  p->case_sensitive ? "" : "; local parts are compared ignoring case");
            return;
        }

    /* The postmaster first: aliases may point at postmaster@domain. */
    const char *pm = c->postmaster;
    int pm_line = 0;
    if (!pm && c->nmailboxes)
        pm = c->mailboxes[0].address;
    if (!pm) {
        if (c->ndomains)
            bfail(B, 0,
                  "no mailbox for the postmaster: RFC 5321 4.5.1 requires postmaster "
                  "at every local domain; add a mailbox or set 'postmaster'");
        return;
    }
    {
        char key[512];
        const char *domain;
        if (make_key(p->case_sensitive, pm, key, sizeof key, &domain) < 0 ||
            !sk_policy_is_local_domain(p, domain)) {
            bfail(B, pm_line, "postmaster %s must be in a local domain", pm);
            return;
        }
        entry *e = find_entry(p, key);
        if (!e) {
            bfail(B, pm_line, "postmaster %s is not a configured mailbox or alias", pm);
            return;
        }
        resolve_entry(B, e, 0);
        if (B->failed)
            return;
        rset_merge(B, &p->postmaster, &e->set);
        if (p->postmaster.queued) {
            bfail(B, pm_line, "postmaster %s must deliver to a local mailbox", pm);
            return;
        }
    }

    for (size_t i = 0; i < p->nentries && !B->failed; i++)
        resolve_entry(B, &p->entries[i], 0);

    if (c->ncatchalls) {
        p->catchalls = calloc(c->ncatchalls, sizeof *p->catchalls);
        if (!p->catchalls) {
            bfail(B, 0, "out of memory");
            return;
        }
    }
    for (size_t i = 0; i < c->ncatchalls && !B->failed; i++) {
        const sk_catchall_config *cc = &c->catchalls[i];
        catchall *ca = &p->catchalls[p->ncatchalls++];
        ca->domain = strdup(cc->domain);
        if (!ca->domain) {
            bfail(B, cc->line, "out of memory");
            return;
        }
        char via[300];
        snprintf(via, sizeof via, "catch_all for %s", cc->domain);
        resolve_addr(B, cc->target, cc->line, 0, via, &ca->set);
    }
}

sk_policy *sk_policy_new(const sk_config *cfg, char *err, size_t errlen)
{
    builder B = {.cfg = cfg, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    sk_policy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", cfg->path);
        return NULL;
    }
    B.p = p;
    p->case_sensitive = cfg->local_part_case_sensitive;
    p->forward_notify = cfg->forward_notify;
    if (cfg->relay_queue)
        p->relay_queue = intern(&B, cfg->relay_queue);
    if (cfg->ndomains) {
        p->domains = calloc(cfg->ndomains, sizeof *p->domains);
        if (!p->domains)
            bfail(&B, 0, "out of memory");
        for (size_t i = 0; i < cfg->ndomains && !B.failed; i++) {
            p->domains[i] = strdup(cfg->domains[i]);
            if (!p->domains[i])
                bfail(&B, 0, "out of memory");
            else
                p->ndomains++;
        }
    }
    if (cfg->ntrusted) {
        p->trusted = calloc(cfg->ntrusted, sizeof *p->trusted);
        if (!p->trusted)
            bfail(&B, 0, "out of memory");
        for (size_t i = 0; i < cfg->ntrusted && !B.failed; i++) {
            const char *why;
            if (sk_cidr_parse(cfg->trusted_networks[i], &p->trusted[i], &why) < 0)
                bfail(&B, cfg->trusted_line, "trusted_networks: '%s': %s", cfg->trusted_networks[i],
                      why);
            else
                p->ntrusted++;
        }
    }
    if (!B.failed)
        build_tables(&B);
    if (B.failed) {
        sk_policy_free(p);
        return NULL;
    }
    return p;
}

void sk_policy_free(sk_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ndomains; i++)
        free(p->domains[i]);
    free(p->domains);
    for (size_t i = 0; i < p->nentries; i++) {
        free(p->entries[i].key);
        free(p->entries[i].set.maildirs);
        free(p->entries[i].set.boxes);
        free(p->entries[i].set.remote);
    }
    free(p->entries);
    for (size_t i = 0; i < p->ncatchalls; i++) {
        free(p->catchalls[i].domain);
        free(p->catchalls[i].set.maildirs);
        free(p->catchalls[i].set.boxes);
        free(p->catchalls[i].set.remote);
    }
    free(p->catchalls);
    free(p->postmaster.maildirs);
    free(p->postmaster.boxes);
    free(p->postmaster.remote);
    free(p->trusted);
    for (size_t i = 0; i < p->nstrings; i++)
        free(p->strings[i]);
    free(p->strings);
    free(p->dirs);
    free(p);
}

int sk_policy_trusted(const sk_policy *p, const char *addr)
{
    for (size_t i = 0; i < p->ntrusted; i++)
        if (sk_cidr_match(&p->trusted[i], addr))
            return 1;
    return 0;
}

/* A self-contained copy of r, or (r NULL) the delivery of one relayed
 * address `remote` to the outbound queue. */
static sk_delivery *delivery_from(const rset *r, const char *remote)
{
    sk_delivery *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    size_t n = r ? r->n : 0, nr = r ? r->nremote : 1;
    d->maildirs = calloc(n ? n : 1, sizeof *d->maildirs);
    d->mailboxes = calloc(n ? n : 1, sizeof *d->mailboxes);
    d->remote = calloc(nr ? nr : 1, sizeof *d->remote);
    if (!d->maildirs || !d->mailboxes || !d->remote) {
        sk_delivery_free(d);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        d->maildirs[i] = strdup(r->maildirs[i]);
        d->mailboxes[i] = strdup(r->boxes[i]);
        d->nmaildirs++;
        if (!d->maildirs[i] || !d->mailboxes[i]) {
            sk_delivery_free(d);
            return NULL;
        }
    }
    for (size_t i = 0; i < nr; i++) {
        if (!(d->remote[i] = strdup(r ? r->remote[i] : remote))) {
            sk_delivery_free(d);
            return NULL;
        }
        d->nremote++;
    }
    if (r && r->forward_to && !(d->forward_to = strdup(r->forward_to))) {
        sk_delivery_free(d);
        return NULL;
    }
    d->queued = d->nremote > 0;
    return d;
}

void sk_delivery_free(sk_delivery *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nmaildirs; i++) {
        free(d->maildirs[i]);
        if (d->mailboxes)
            free(d->mailboxes[i]);
    }
    free(d->maildirs);
    free(d->mailboxes);
    for (size_t i = 0; i < d->nremote; i++)
        free(d->remote[i]);
    free(d->remote);
    free(d->forward_to);
    free(d);
}

sk_rcpt_verdict sk_policy_rcpt(const sk_policy *p, const char *addr, int may_relay,
                               sk_delivery **out)
{
    *out = NULL;
    const rset *r = NULL;
    if (!strchr(addr, '@')) {
        /* RFC 5321 4.1.1.3: the bare "Postmaster" (any case) is the only
         * recipient allowed without a domain. */
        if (strcasecmp(addr, "postmaster") != 0 || !p->postmaster.n)
            return SK_RCPT_UNKNOWN;
        r = &p->postmaster;
    } else {
        char key[512];
        const char *domain;
        if (make_key(p->case_sensitive, addr, key, sizeof key, &domain) < 0)
            return SK_RCPT_UNKNOWN;
        if (!sk_policy_is_local_domain(p, domain)) {
            if (!may_relay || !p->relay_queue)
                return SK_RCPT_RELAY_DENIED;
            *out = delivery_from(NULL, addr);
            return *out ? SK_RCPT_ACCEPT : SK_RCPT_TEMPFAIL;
        }
        const entry *e = find_entry(p, key);
        if (e)
            r = &e->set;
        else if (is_postmaster_local(key) && p->postmaster.n)
            r = &p->postmaster;
        else
            r = find_catchall(p, domain);
        if (!r || (!r->n && !r->nremote))
            return SK_RCPT_UNKNOWN;
    }
    *out = delivery_from(r, NULL);
    if (!*out)
        return SK_RCPT_TEMPFAIL;
    return (r->forward_to && p->forward_notify) ? SK_RCPT_FORWARD : SK_RCPT_ACCEPT;
}

size_t sk_policy_ndomains(const sk_policy *p)
{
    return p->ndomains;
}

size_t sk_policy_nmailboxes(const sk_policy *p)
{
    return p->nmailboxes;
}

size_t sk_policy_naliases(const sk_policy *p)
{
    return p->naliases;
}

size_t sk_policy_nmaildirs(const sk_policy *p)
{
    return p->ndirs;
}

const char *sk_policy_maildir(const sk_policy *p, size_t i)
{
    return i < p->ndirs ? p->dirs[i] : NULL;
}
