/*
 * log_journal.h - log = "journal": each key=value of a log line becomes a
 * journal field (SMTPKIT_EVENT=connect, SMTPKIT_PEER=192.0.2.1, ...) next
 * to MESSAGE and PRIORITY, so `journalctl SMTPKIT_EVENT=message` selects
 * by field (systemd.journal-fields(7), sd_journal_send(3)).
 */
#ifndef SMTPKIT_SERVER_LOG_JOURNAL_H
#define SMTPKIT_SERVER_LOG_JOURNAL_H

#include <stddef.h>

#define SK_LOG_FIELDS_MAX 32

/* One key=value of a log line: the journal field name ("SMTPKIT_" and the
 * key upper-cased, '-' as '_') and the value (quotes removed), pointing
 * into the line. */
typedef struct sk_log_field {
    char name[48];
    const char *value;
    size_t len;
} sk_log_field;

/* Split a log line ("event=connect conn=1 peer=... error=\"a b\"") into at
 * most max fields; words that are not key=value are skipped (they stay in
 * MESSAGE). Returns the number of fields. */
size_t sk_log_fields(const char *line, sk_log_field *out, size_t max);

/* Send one line to journald (nothing where built without libsystemd). */
void sk_log_journal(int prio, const char *line);

#endif
