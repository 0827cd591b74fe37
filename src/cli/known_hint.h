/*
 * known_hint.h - the known-reply hint `probe` and `send` print under a
 * refusal: which provider's reply it is, who must act and what to do
 * (the table of src/core/known_replies.def through sk_known_reply_match).
 */
#ifndef SMTPKIT_CLI_KNOWN_HINT_H
#define SMTPKIT_CLI_KNOWN_HINT_H

#include <stdio.h>

#include "client/json_writer.h"
#include "smtpkit/reply.h"

/* Print "known: ..." lines under a reply, each starting with `indent`;
 * nothing when no row of the table matches or the reply is a success. */
void sk_known_hint(FILE *f, const char *indent, const char *command, const sk_reply *r);
/* The same for a reply kept as one line ("550 5.7.1 text / 550 5.7.1 more"). */
void sk_known_hint_line(FILE *f, const char *indent, const char *command, const char *line);
/* Add a "known" member (an object, or null) to the JSON object being written. */
void sk_known_hint_json(sk_json *j, const char *command, const sk_reply *r);

#endif
