/*
 * fuzz_command.c - libFuzzer target for the command line and envelope
 * address parsers (RFC 5321 4.1.1, 4.1.2). The first byte picks the parser
 * flags; the rest is one command line. Invariants are checked, not just
 * crashes: results stay inside the input and inside the RFC limits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/address.h"
#include "smtpkit/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_address(const sk_address *a)
{
    size_t n = strnlen(a->mailbox, sizeof a->mailbox);
    if (n > SK_ADDR_PATH_MAX - 2)
        abort();
    if (!a->null_path && !a->postmaster && n) {
        if (a->local_len > SK_ADDR_LOCAL_MAX || a->domain_off != a->local_len + 1 ||
            a->mailbox[a->local_len] != '@')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0] & 7;
    const char *line = (const char *)data + 1;
    size_t len = size - 1;

    sk_command cmd;
    if (sk_command_split(line, len, &cmd) == 0) {
        if (cmd.arg < line || cmd.arg + cmd.arg_len > line + len)
            abort();
        if (cmd.verb != SK_VERB_UNKNOWN && strlen(sk_verb_name(cmd.verb)) != cmd.verb_len)
            abort();
    }

    sk_path_command pc;
    const char *err = NULL;
    sk_path_cmd_status st =
        sk_command_parse_path(line, len, (data[0] & 8) ? "TO:" : "FROM:", flags, &pc, &err);
    if (st == SK_PATHCMD_OK) {
        check_address(&pc.path);
        if (pc.nparams > SK_MAX_ESMTP_PARAMS)
            abort();
        for (size_t i = 0; i < pc.nparams; i++) {
            const sk_esmtp_param *p = &pc.params[i];
            if (p->key < line || p->key + p->key_len > line + len || p->key_len == 0)
                abort();
            if (p->value && (p->value < line || p->value + p->value_len > line + len ||
                             p->value_len == 0 || memchr(p->value, ' ', p->value_len)))
                abort();
        }
    } else if (!err) {
        abort();
    }

    sk_address a;
    size_t used = 0;
    if (sk_path_parse(line, len, flags, &a, &used, &err) == SK_ADDR_OK) {
        check_address(&a);
        if (used < 2 || used > len || used > SK_ADDR_PATH_MAX || line[used - 1] != '>')
            abort();
        if (a.utf8 && !(flags & SK_ADDR_UTF8))
            abort();
        if ((flags & SK_ADDR_UTF8) && !sk_utf8_valid(a.mailbox, strlen(a.mailbox)))
            abort();
        if (!(flags & SK_ADDR_UTF8))
            for (const char *p = a.mailbox; *p; p++)
                if ((unsigned char)*p >= 0x80)
                    abort();
    }
    if (sk_mailbox_parse(line, len, flags, &a, &err) == SK_ADDR_OK)
        check_address(&a);
    sk_domain_valid(line, len, flags & 1);
    sk_address_literal_valid(line, len);
    sk_xtext_valid(line, len);
    return 0;
}
