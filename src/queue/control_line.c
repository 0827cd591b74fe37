/*
 * control_line.c - parser and writer of the queue control socket's
 * request and answer lines (control_line.h). Pure: bytes in, a command
 * out; used by the server (server/queue_control.c) and `smtpkit queue`.
 */
#include "queue/control_line.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "queue/queue_dir.h"

static const struct {
    const char *name;
    sk_control_verb verb;
    int arg; /* 0: none, 1: required id, 2: optional id or domain */
} verbs[] = {
    {"FLUSH", SK_CONTROL_FLUSH, 2},
    {"KICK", SK_CONTROL_KICK, 1},
    {"BOUNCE", SK_CONTROL_BOUNCE, 1},
};

const char *sk_control_verb_name(sk_control_verb v)
{
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (verbs[i].verb == v)
            return verbs[i].name;
    return "?";
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static int label_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c >= 0x80;
}

int sk_control_domain_valid(const char *s)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n == 0 || n >= SK_CONTROL_ARG_MAX)
        return 0;
    if (s[0] == '[') { /* address literal, RFC 5321 4.1.3 */
        if (n < 3 || s[n - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c <= 0x20 || c >= 0x7f || c == '[' || c == ']' || c == '\\')
                return 0;
        }
        return 1;
    }
    if (n > 253)
        return 0;
    size_t label = 0;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return 0; /* empty label: leading or double dot */
            label = 0;
            dots++;
        } else if (label_char(c)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return dots > 0 && label > 0;
}

int sk_control_parse(const char *line, size_t len, sk_control_cmd *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!line) {
        set_err(err, errlen, "empty command");
        return -1;
    }
    if (len > SK_CONTROL_LINE_MAX) {
        set_err(err, errlen, "line too long");
        return -1;
    }
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) {
            set_err(err, errlen, "control byte in command");
            return -1;
        }
    }
    if (len == 0) {
        set_err(err, errlen, "empty command");
        return -1;
    }
    const char *sp = memchr(line, ' ', len);
    size_t wlen = sp ? (size_t)(sp - line) : len;
    int found = -1;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strlen(verbs[i].name) == wlen && strncasecmp(verbs[i].name, line, wlen) == 0)
            found = (int)i;
    if (found < 0) {
        set_err(err, errlen, "unknown command");
        return -1;
    }
    out->verb = verbs[found].verb;
    const char *arg = sp ? sp + 1 : NULL;
    size_t alen = sp ? len - wlen - 1 : 0;
    if (!arg) {
        if (verbs[found].arg == 1) {
            set_err(err, errlen, "a queue id is required");
            return -1;
        }
        return 0;
    }
    if (alen == 0 || memchr(arg, ' ', alen)) {
        set_err(err, errlen, alen ? "one argument only" : "empty argument");
        return -1;
    }
    if (alen >= sizeof out->arg) {
        set_err(err, errlen, "argument too long");
        return -1;
    }
    memcpy(out->arg, arg, alen);
    out->arg[alen] = '\0';
    if (sk_queue_id_valid(out->arg))
        return 0;
    if (verbs[found].arg == 2 && sk_control_domain_valid(out->arg))
        return 0;
    set_err(err, errlen,
            verbs[found].arg == 2 ? "malformed queue id or domain" : "malformed queue id");
    out->arg[0] = '\0';
    return -1;
}

int sk_control_format(const sk_control_cmd *c, char *out, size_t cap)
{
    if (!c || !out || cap == 0)
        return -1;
    int n;
    if (c->arg[0])
        n = snprintf(out, cap, "%s %s\n", sk_control_verb_name(c->verb), c->arg);
    else
        n = snprintf(out, cap, "%s\n", sk_control_verb_name(c->verb));
    if (n < 0 || (size_t)n >= cap || n > SK_CONTROL_LINE_MAX)
        return -1;
    sk_control_cmd back;
    if (sk_control_parse(out, (size_t)n, &back, NULL, 0) < 0 || back.verb != c->verb ||
        strcmp(back.arg, c->arg) != 0)
        return -1;
    return n;
}

int sk_control_reply_parse(const char *line, size_t len, const char **text, size_t *textlen)
{
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    int ok;
    size_t w;
    if (len >= 2 && !memcmp(line, "OK", 2)) {
        ok = 1;
        w = 2;
    } else if (len >= 3 && !memcmp(line, "ERR", 3)) {
        ok = 0;
        w = 3;
    } else {
        return -1;
    }
    if (len > w && line[w] != ' ')
        return -1;
    size_t skip = len > w ? w + 1 : w;
    if (text)
        *text = line + skip;
    if (textlen)
        *textlen = len - skip;
    return ok;
}
