/*
 * reply_digits.c - what each digit of a basic SMTP reply code says, and
 * whether a code fits the reply-code grammar.
 *
 * RFC 5321 4.2 (Reply-code = %x32-35 %x30-35 %x30-39) and 4.2.1 (the
 * meaning of the first and second digit; the third is a finer gradation).
 * This lets `explain` describe a well-formed code that no RFC registers.
 */
#include "smtpkit/registry.h"

#include <stddef.h>

struct digit_text {
    const char *name;
    const char *meaning;
};

/* First digit: 2..5 (index 0..3). */
static const struct digit_text first_digit[] = {
    {"positive completion",
     "The requested action has been completed; the client may start a new request."},
    {"positive intermediate",
     "The command was accepted but the action waits for more information: the client "
     "sends the next part (message data after DATA, the next AUTH response)."},
    {"transient negative completion",
     "The command was not accepted and nothing happened, but the condition is temporary: "
     "the same request may succeed if repeated later."},
    {"permanent negative completion",
     "The command was not accepted and nothing happened; repeating the same request "
     "unchanged will fail again."},
};

/* Second digit: 0..5. RFC 5321 gives 3 and 4 no category. */
static const struct digit_text second_digit[] = {
    {"syntax", "Syntax: the command was wrong, unrecognised, superfluous or not implemented."},
    {"information", "Information: a reply to a request for information such as status or help."},
    {"connections", "Connections: the reply concerns the transmission channel."},
    {"unspecified", "Unspecified: RFC 5321 assigns no category to this second digit."},
    {"unspecified", "Unspecified: RFC 5321 assigns no category to this second digit."},
    {"mail system",
     "Mail system: the status of the receiving mail system for the requested transfer or "
     "other action."},
};

static const struct digit_text third_digit = {
    "detail", "Finer gradation of meaning within the category given by the second digit."};

int sk_code_is_valid(int code)
{
    if (code < 200 || code > 599)
        return 0;
    return (code / 10) % 10 <= 5;
}

static const struct digit_text *digit_text(int position, int digit)
{
    switch (position) {
    case 0:
        return digit >= 2 && digit <= 5 ? &first_digit[digit - 2] : NULL;
    case 1:
        return digit >= 0 && digit <= 5 ? &second_digit[digit] : NULL;
    case 2:
        return digit >= 0 && digit <= 9 ? &third_digit : NULL;
    default:
        return NULL;
    }
}

const char *sk_digit_meaning(int position, int digit)
{
    const struct digit_text *t = digit_text(position, digit);
    return t ? t->meaning : NULL;
}

const char *sk_digit_name(int position, int digit)
{
    const struct digit_text *t = digit_text(position, digit);
    return t ? t->name : NULL;
}
