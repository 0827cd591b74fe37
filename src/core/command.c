/*
 * command.c - SMTP command line parser.
 *
 * RFC 5321 4.1.1 (verbs, case-insensitive), 4.1.2 (Mail-parameters,
 * Rcpt-parameters, esmtp-param), 3.3 (no space around the colon; see the
 * tolerance notes in command.h). The parser only reads the line it is given
 * by (pointer, length): no NUL termination is assumed.
 */
#include "smtpkit/command.h"

#include <string.h>
#include <strings.h>

static const char *const verb_names[SK_VERB_COUNT] = {
    [SK_VERB_UNKNOWN] = "UNKNOWN", [SK_VERB_HELO] = "HELO",         [SK_VERB_EHLO] = "EHLO",
    [SK_VERB_MAIL] = "MAIL",       [SK_VERB_RCPT] = "RCPT",         [SK_VERB_DATA] = "DATA",
    [SK_VERB_BDAT] = "BDAT",       [SK_VERB_RSET] = "RSET",         [SK_VERB_VRFY] = "VRFY",
    [SK_VERB_EXPN] = "EXPN",       [SK_VERB_HELP] = "HELP",         [SK_VERB_NOOP] = "NOOP",
    [SK_VERB_QUIT] = "QUIT",       [SK_VERB_STARTTLS] = "STARTTLS", [SK_VERB_AUTH] = "AUTH",
    [SK_VERB_SEND] = "SEND",       [SK_VERB_SOML] = "SOML",         [SK_VERB_SAML] = "SAML",
    [SK_VERB_TURN] = "TURN",       [SK_VERB_ETRN] = "ETRN",         [SK_VERB_ATRN] = "ATRN",
};

const char *sk_verb_name(sk_verb v)
{
    if ((unsigned)v >= SK_VERB_COUNT)
        return "UNKNOWN";
    return verb_names[v];
}

sk_verb sk_verb_lookup(const char *p, size_t n)
{
    for (int v = SK_VERB_UNKNOWN + 1; v < SK_VERB_COUNT; v++) {
        const char *name = verb_names[v];
        if (strlen(name) == n && strncasecmp(name, p, n) == 0)
            return (sk_verb)v;
    }
    return SK_VERB_UNKNOWN;
}

int sk_command_split(const char *line, size_t len, sk_command *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    size_t i = 0;
    while (i < len && line[i] != ' ')
        i++;
    cmd->verb_text = line;
    cmd->verb_len = i;
    if (i == 0)
        return -1;
    cmd->verb = sk_verb_lookup(line, i);
    size_t a = i, b = len;
    while (a < b && line[a] == ' ')
        a++;
    while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t'))
        b--;
    cmd->arg = line + a;
    cmd->arg_len = b - a;
    return 0;
}

int sk_esmtp_param_is(const sk_esmtp_param *p, const char *name)
{
    return strlen(name) == p->key_len && strncasecmp(p->key, name, p->key_len) == 0;
}

static int is_alnum(unsigned ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static int is_hexup(unsigned ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F');
}

int sk_xtext_valid(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned ch = (unsigned char)s[i];
        if (ch == '+') {
            if (n - i < 3 || !is_hexup((unsigned char)s[i + 1]) ||
                !is_hexup((unsigned char)s[i + 2]))
                return 0;
            i += 2;
        } else if (ch < 33 || ch > 126 || ch == '=') {
            return 0;
        }
    }
    return 1;
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value]
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 * esmtp-value = 1*(%d33-60 / %d62-126) */
static sk_path_cmd_status parse_params(const char *s, size_t len, sk_path_command *out,
                                       const char **err)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        if (out->nparams == SK_MAX_ESMTP_PARAMS) {
            *err = "too many parameters";
            return SK_PATHCMD_E_PARAM;
        }
        sk_esmtp_param *p = &out->params[out->nparams];
        size_t k = i;
        if (!is_alnum((unsigned char)s[i])) {
            *err = "malformed parameter keyword";
            return SK_PATHCMD_E_PARAM;
        }
        while (i < len && (is_alnum((unsigned char)s[i]) || s[i] == '-'))
            i++;
        p->key = s + k;
        p->key_len = i - k;
        p->value = NULL;
        p->value_len = 0;
        if (i < len && s[i] == '=') {
            i++;
            size_t v = i;
            while (i < len && (unsigned char)s[i] >= 33 && (unsigned char)s[i] <= 126 &&
                   s[i] != '=')
                i++;
            if (i == v) {
                *err = "empty parameter value";
                return SK_PATHCMD_E_PARAM;
            }
            p->value = s + v;
            p->value_len = i - v;
        }
        if (i < len && s[i] != ' ') {
            *err = "malformed parameter";
            return SK_PATHCMD_E_PARAM;
        }
        out->nparams++;
    }
    return SK_PATHCMD_OK;
}

sk_path_cmd_status sk_command_parse_path(const char *arg, size_t len, const char *prefix,
                                         unsigned addr_flags, sk_path_command *out,
                                         const char **err)
{
    memset(out, 0, sizeof *out);
    *err = NULL;
    size_t plen = strlen(prefix);
    if (len < plen || strncasecmp(arg, prefix, plen) != 0) {
        *err = "missing or malformed keyword before the address";
        return SK_PATHCMD_E_SYNTAX;
    }
    size_t i = plen;
    while (i < len && arg[i] == ' ') /* tolerated: see command.h */
        i++;
    if (i >= len) {
        *err = "missing address";
        return SK_PATHCMD_E_SYNTAX;
    }
    if (arg[i] != '<') {
        *err = "address must be enclosed in <>";
        return SK_PATHCMD_E_ADDRESS;
    }
    size_t used = 0;
    sk_addr_status st = sk_path_parse(arg + i, len - i, addr_flags, &out->path, &used, err);
    if (st == SK_ADDR_E_NEEDS_UTF8)
        return SK_PATHCMD_E_NEEDS_UTF8;
    if (st != SK_ADDR_OK)
        return SK_PATHCMD_E_ADDRESS;
    i += used;
    if (i < len && arg[i] != ' ') {
        *err = "unexpected text after the address";
        return SK_PATHCMD_E_SYNTAX;
    }
    return parse_params(arg + i, len - i, out, err);
}
