/*
 * fuzz_control_line.c - libFuzzer target for the queue control socket's
 * request parser (queue/control_line.c, sk_control_parse) and the server's
 * answer to a line (server/queue_control.c, sk_queue_control_answer, with
 * no agent). The input is copied into a buffer of exactly its size, so any
 * read past it trips AddressSanitizer. A request that parses must format
 * back to a line that parses to the same request; every answer is one
 * line starting "OK " or "ERR " with no control byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/control_line.h"
#include "server/queue_control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    sk_control_cmd c;
    char err[128];
    if (sk_control_parse(copy, size, &c, err, sizeof err) == 0) {
        char line[SK_CONTROL_LINE_MAX + 1];
        int n = sk_control_format(&c, line, sizeof line);
        if (n < 0)
            abort();
        sk_control_cmd back;
        if (sk_control_parse(line, (size_t)n, &back, err, sizeof err) != 0 || back.verb != c.verb ||
            strcmp(back.arg, c.arg) != 0)
            abort();
    }
    char reply[SK_CONTROL_LINE_MAX];
    sk_queue_control_answer(NULL, copy, size, reply, sizeof reply);
    if (strncmp(reply, "OK ", 3) != 0 && strncmp(reply, "ERR ", 4) != 0)
        abort();
    for (const char *p = reply; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            abort();
    const char *t;
    size_t tl;
    (void)sk_control_reply_parse(copy, size, &t, &tl);
    free(copy);
    return 0;
}
