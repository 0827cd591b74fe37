/*
 * log_journal.c - log = "journal": one journal entry per log line through
 * libsystemd's sd_journal_sendv(3), with MESSAGE (the line), PRIORITY,
 * SYSLOG_IDENTIFIER=smtpkit and one SMTPKIT_<KEY> field per key=value, so
 * entries can be selected by field (`journalctl SMTPKIT_EVENT=message
 * SMTPKIT_RESULT=250`). The splitting is plain string work, compiled (and
 * unit-tested) with or without libsystemd.
 */
#include "server/log_journal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#ifdef SK_HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

size_t sk_log_fields(const char *line, sk_log_field *out, size_t max)
{
    size_t n = 0;
    const char *p = line;
    while (*p && n < max) {
        while (*p == ' ')
            p++;
        const char *key = p;
        while (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' || *p == '-')
            p++;
        size_t klen = (size_t)(p - key);
        if (*p != '=' || klen == 0 || klen > 32 || !islower((unsigned char)key[0])) {
            while (*p && *p != ' ')
                p++; /* not key=value: skip the word */
            continue;
        }
        p++; /* '=' */
        const char *v = p;
        size_t vlen;
        if (*p == '"') {
            v = ++p;
            /* a quoted value ends at a quote followed by a space or the end */
            while (*p && !(p[0] == '"' && (p[1] == ' ' || p[1] == '\0')))
                p++;
            vlen = (size_t)(p - v);
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ')
                p++;
            vlen = (size_t)(p - v);
        }
        sk_log_field *f = &out[n++];
        memcpy(f->name, "SMTPKIT_", 8);
        for (size_t i = 0; i < klen; i++)
            f->name[8 + i] = key[i] == '-' ? '_' : (char)toupper((unsigned char)key[i]);
        f->name[8 + klen] = '\0';
        f->value = v;
        f->len = vlen;
    }
    return n;
}

void sk_log_journal(int prio, const char *line)
{
#ifdef SK_HAVE_LIBSYSTEMD
    sk_log_field f[SK_LOG_FIELDS_MAX];
    size_t nf = sk_log_fields(line, f, SK_LOG_FIELDS_MAX);
    /* MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, then the fields */
    char head[3][2200];
    struct iovec iov[3 + SK_LOG_FIELDS_MAX];
    int h0 = snprintf(head[0], sizeof head[0], "MESSAGE=%s", line);
    int h1 = snprintf(head[1], sizeof head[1], "PRIORITY=%d", prio);
    int h2 = snprintf(head[2], sizeof head[2], "SYSLOG_IDENTIFIER=smtpkit");
    if (h0 < 0 || h1 < 0 || h2 < 0)
        return;
    iov[0] = (struct iovec){head[0], (size_t)h0 < sizeof head[0] ? (size_t)h0 : sizeof head[0] - 1};
    iov[1] = (struct iovec){head[1], (size_t)h1};
    iov[2] = (struct iovec){head[2], (size_t)h2};
    /* each field as NAME=value, in one buffer the size of the line plus names */
    char buf[2048 + SK_LOG_FIELDS_MAX * 50];
    size_t used = 0;
    int n = 3;
    for (size_t i = 0; i < nf; i++) {
        size_t nl = strlen(f[i].name);
        if (used + nl + 1 + f[i].len > sizeof buf)
            break;
        char *start = buf + used;
        memcpy(start, f[i].name, nl);
        start[nl] = '=';
        memcpy(start + nl + 1, f[i].value, f[i].len);
        iov[n++] = (struct iovec){start, nl + 1 + f[i].len};
        used += nl + 1 + f[i].len;
    }
    sd_journal_sendv(iov, n);
#else
    (void)prio;
    (void)line;
#endif
}
