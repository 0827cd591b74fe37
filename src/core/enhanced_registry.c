/*
 * enhanced_registry.c - the enhanced mail system status codes
 * (class.subject.detail) and their meanings.
 *
 * RFC 3463 (the codes, sections 3.1-3.8), RFC 5248 (the IANA "SMTP Enhanced
 * Status Codes" registry) and the later registrations: RFC 3886 (X.1.9),
 * RFC 4468 (X.6.6), RFC 4954 (X.5.6, X.7.8, X.7.9, X.7.11, X.7.12),
 * RFC 5248 (X.7.10, X.7.13, X.7.14), RFC 6531 (X.6.7-X.6.10),
 * RFC 6710 (X.3.6, X.7.15, X.7.16), RFC 7293 (X.7.17-X.7.19),
 * RFC 7372 (X.7.20-X.7.26), RFC 7505 (X.1.10, X.7.27), X.7.28 (mail flood),
 * RFC 8617 (X.7.29), RFC 8689 (X.7.30).
 * The meanings are written for people reading a bounce; the names follow
 * the registry.
 */
#include "smtpkit/registry.h"

#include <stddef.h>

const char *sk_enhanced_class_name(int cls)
{
    switch (cls) {
    case 2:
        return "Success";
    case 4:
        return "Persistent transient failure";
    case 5:
        return "Permanent failure";
    default:
        return NULL;
    }
}

const char *sk_enhanced_class_meaning(int cls)
{
    switch (cls) {
    case 2:
        return "The action succeeded; the detail may report a change made on the way "
               "(RFC 3463 2).";
    case 4:
        return "The message as sent is valid, but a temporary condition stopped or delayed "
               "it; sending it again later may succeed (RFC 3463 2).";
    case 5:
        return "Sending the message again in the same form will not work; something about "
               "the message or the destination must change first (RFC 3463 2).";
    default:
        return NULL;
    }
}

/* Sorted by subject, then detail; the subject row (detail -1) comes first. */
static const sk_enhanced_entry table[] = {
    /* X.0 */
    {0, -1, "Other or undefined status", "No further information about the subject is available.",
     "RFC 3463 3.1"},
    {0, 0, "Other undefined status",
     "Only the class of the problem is known: success, temporary or permanent failure.",
     "RFC 3463 3.1"},

    /* X.1 */
    {1, -1, "Addressing status",
     "The sender's or a recipient's address: its syntax or whether it is valid. The sender can "
     "usually correct these and try again.",
     "RFC 3463 3.2"},
    {1, 0, "Other address status", "Something about an address caused this status.",
     "RFC 3463 3.2"},
    {1, 1, "Bad destination mailbox address",
     "The mailbox does not exist: the part left of the '@' is unknown at the destination.",
     "RFC 3463 3.2"},
    {1, 2, "Bad destination system address",
     "The destination domain (right of the '@') does not exist or cannot take mail.",
     "RFC 3463 3.2"},
    {1, 3, "Bad destination mailbox address syntax",
     "The recipient address is not syntactically valid.", "RFC 3463 3.2"},
    {1, 4, "Destination mailbox address ambiguous",
     "The address matches more than one recipient at the destination.", "RFC 3463 3.2"},
    {1, 5, "Destination address valid", "The recipient address is valid (a positive report).",
     "RFC 3463 3.2"},
    {1, 6, "Destination mailbox has moved, no forwarding address",
     "The address was valid once but no longer takes mail, and no new address is known.",
     "RFC 3463 3.2"},
    {1, 7, "Bad sender's mailbox address syntax",
     "The sender (MAIL FROM) address is not syntactically valid.", "RFC 3463 3.2"},
    {1, 8, "Bad sender's system address",
     "The sender's domain does not exist or cannot take return mail.", "RFC 3463 3.2"},
    {1, 9, "Message relayed to non-compliant mailer",
     "The address was valid, but the message went on to a system that cannot report "
     "delivery status; nothing more is known.",
     "RFC 3886"},
    {1, 10, "Recipient address has null MX",
     "The recipient's domain publishes a null MX: it says it accepts no mail at all.", "RFC 7505"},

    /* X.2 */
    {2, -1, "Mailbox status",
     "Something about the recipient's mailbox, which is under the recipient's control.",
     "RFC 3463 3.3"},
    {2, 0, "Other or undefined mailbox status",
     "The mailbox exists, but something about it caused this status.", "RFC 3463 3.3"},
    {2, 1, "Mailbox disabled, not accepting messages",
     "The mailbox exists but takes no messages now (perhaps for good).", "RFC 3463 3.3"},
    {2, 2, "Mailbox full",
     "The mailbox is over its quota; the recipient can make room by deleting mail.",
     "RFC 3463 3.3"},
    {2, 3, "Message length exceeds administrative limit",
     "The message is larger than this mailbox's own size limit.", "RFC 3463 3.3"},
    {2, 4, "Mailing list expansion problem",
     "The address is a mailing list that could not be expanded.", "RFC 3463 3.3"},

    /* X.3 */
    {3, -1, "Mail system status",
     "Something about the destination system, which is under its administrator's control.",
     "RFC 3463 3.4"},
    {3, 0, "Other or undefined mail system status",
     "The destination normally takes mail, but something about the system caused this status.",
     "RFC 3463 3.4"},
    {3, 1, "Mail system full",
     "The destination system is out of storage; the recipient cannot fix this.", "RFC 3463 3.4"},
    {3, 2, "System not accepting network messages",
     "The host takes no messages now: shutting down, overloaded, in maintenance, or never.",
     "RFC 3463 3.4"},
    {3, 3, "System not capable of selected features",
     "The destination does not support features the message asks for.", "RFC 3463 3.4"},
    {3, 4, "Message too big for system", "The message exceeds the system's per-message size limit.",
     "RFC 3463 3.4"},
    {3, 5, "System incorrectly configured",
     "The system is not configured in a way that lets it accept this message.", "RFC 3463 3.4"},
    {3, 6, "Requested priority was changed",
     "The message was accepted, but at a different priority than the one requested.", "RFC 6710"},

    /* X.4 */
    {4, -1, "Network and routing status",
     "The delivery path itself: connections, DNS and routing, under the control of the "
     "destination's or an intermediate system's administrator.",
     "RFC 3463 3.5"},
    {4, 0, "Other or undefined network or routing status",
     "Something went wrong in the network, but it is not clear what.", "RFC 3463 3.5"},
    {4, 1, "No answer from host",
     "The outbound connection was not answered: the remote system was busy or unreachable.",
     "RFC 3463 3.5"},
    {4, 2, "Bad connection",
     "The connection was made but the transaction could not finish (timeout or poor "
     "connection).",
     "RFC 3463 3.5"},
    {4, 3, "Directory server failure",
     "A directory server such as DNS was unavailable, so the message could not be forwarded.",
     "RFC 3463 3.5"},
    {4, 4, "Unable to route",
     "The next hop could not be determined from the routing information (e.g. no MX or A "
     "record).",
     "RFC 3463 3.5"},
    {4, 5, "Mail system congestion", "The mail system was too congested to deliver the message.",
     "RFC 3463 3.5"},
    {4, 6, "Routing loop detected",
     "The message was forwarded too many times: a routing or forwarding loop.", "RFC 3463 3.5"},
    {4, 7, "Delivery time expired",
     "The message was too old: it stayed queued too long or its time to live ran out.",
     "RFC 3463 3.5"},

    /* X.5 */
    {5, -1, "Mail delivery protocol status",
     "The mail protocol exchange itself: bad commands, syntax, limits, broken connections.",
     "RFC 3463 3.6"},
    {5, 0, "Other or undefined protocol status",
     "Something was wrong with the protocol exchange, and no other detail fits.", "RFC 3463 3.6"},
    {5, 1, "Invalid command", "A command was out of sequence or not supported.", "RFC 3463 3.6"},
    {5, 2, "Syntax error", "A command could not be interpreted: bad syntax or unknown command.",
     "RFC 3463 3.6"},
    {5, 3, "Too many recipients",
     "More recipients than can be handled in one transaction; send the rest in another.",
     "RFC 3463 3.6"},
    {5, 4, "Invalid command arguments",
     "A valid command had invalid arguments: out of range or an unrecognised feature.",
     "RFC 3463 3.6"},
    {5, 5, "Wrong protocol version", "The two sides could not agree on a protocol version.",
     "RFC 3463 3.6"},
    {5, 6, "Authentication exchange line is too long",
     "An AUTH response from the client was longer than the server can take for this "
     "mechanism.",
     "RFC 4954 6"},

    /* X.6 */
    {6, -1, "Message content or media status",
     "The content of the message: media types, conversion, encoding.", "RFC 3463 3.7"},
    {6, 0, "Other or undefined media error",
     "Something about the content made the message undeliverable, and no other detail fits.",
     "RFC 3463 3.7"},
    {6, 1, "Media not supported",
     "The delivery protocol or the next system does not support the message's media.",
     "RFC 3463 3.7"},
    {6, 2, "Conversion required and prohibited",
     "The content must be converted for delivery, but conversion is not allowed.", "RFC 3463 3.7"},
    {6, 3, "Conversion required but not supported",
     "The content must be converted, but a host on the path cannot do it (e.g. 8bit to 7bit).",
     "RFC 3463 3.7"},
    {6, 4, "Conversion with loss performed",
     "The message was delivered, but a conversion on the way lost some data.", "RFC 3463 3.7"},
    {6, 5, "Conversion failed", "A required conversion was attempted and failed.", "RFC 3463 3.7"},
    {6, 6, "Message content not available",
     "The message content could not be fetched from a remote system (BURL).", "RFC 4468"},
    {6, 7, "Non-ASCII addresses not permitted for that sender/recipient",
     "MAIL or RCPT carried a non-ASCII address where that is not allowed.", "RFC 6531"},
    {6, 8, "UTF-8 string reply is required, but not permitted by the SMTP client",
     "The reply would need UTF-8 (e.g. to show a mailbox name), but the client did not "
     "ask for SMTPUTF8.",
     "RFC 6531"},
    {6, 9, "UTF-8 header message cannot be transferred to one or more recipients",
     "The message has UTF-8 header fields that cannot be passed on to some recipients, so "
     "it is rejected.",
     "RFC 6531"},
    {6, 10, "Duplicate of X.6.8 (deprecated)",
     "Registered by mistake as a duplicate of X.6.8; do not use it.", "RFC 6531"},

    /* X.7 */
    {7, -1, "Security or policy status",
     "Filtering, authentication, encryption and sender checks, under the control of the "
     "sender, the recipient or both.",
     "RFC 3463 3.8"},
    {7, 0, "Other or undefined security status",
     "A security or policy reason, possibly not described further on purpose.", "RFC 3463 3.8"},
    {7, 1, "Delivery not authorized, message refused",
     "The sender may not send to this destination: relay denied, blocklist, per-host or "
     "per-recipient filtering.",
     "RFC 3463 3.8"},
    {7, 2, "Mailing list expansion prohibited", "The sender may not send to this mailing list.",
     "RFC 3463 3.8"},
    {7, 3, "Security conversion required but not possible",
     "Delivery needs a conversion between secure messaging protocols that is not possible.",
     "RFC 3463 3.8"},
    {7, 4, "Security features not supported",
     "The message uses security features the delivery protocol cannot support.", "RFC 3463 3.8"},
    {7, 5, "Cryptographic failure",
     "A system allowed to validate or decrypt the message could not: key missing or "
     "invalid.",
     "RFC 3463 3.8"},
    {7, 6, "Cryptographic algorithm not supported",
     "A system allowed to validate or decrypt the message does not support the algorithm.",
     "RFC 3463 3.8"},
    {7, 7, "Message integrity failure",
     "The message could not be validated because it was corrupted or altered.", "RFC 3463 3.8"},
    {7, 8, "Authentication credentials invalid",
     "AUTH failed: wrong or insufficient credentials. Ask the user for them again.", "RFC 4954 6"},
    {7, 9, "Authentication mechanism is too weak",
     "AUTH failed: the mechanism is weaker than the server allows for this user; use a "
     "stronger one.",
     "RFC 4954 6"},
    {7, 10, "Encryption needed",
     "A strong privacy layer (TLS) is needed before this authentication mechanism can be "
     "used.",
     "RFC 5248"},
    {7, 11, "Encryption required for requested authentication mechanism",
     "This AUTH mechanism may only be used over an encrypted connection: STARTTLS first.",
     "RFC 4954 6"},
    {7, 12, "A password transition is needed",
     "The user must move to the chosen mechanism, usually by logging in once with PLAIN "
     "(over TLS).",
     "RFC 4954 6"},
    {7, 13, "User account disabled",
     "The credentials were right but the account is disabled; only its administrator can "
     "help.",
     "RFC 5248"},
    {7, 14, "Trust relationship required",
     "The submission server needs a configured trust relationship with a third-party server "
     "to fetch the content (BURL).",
     "RFC 5248"},
    {7, 15, "Priority level is too low",
     "The requested priority is below the lowest the server accepts now.", "RFC 6710"},
    {7, 16, "Message is too big for the specified priority",
     "At this priority only smaller messages are accepted now.", "RFC 6710"},
    {7, 17, "Mailbox owner has changed",
     "RRVS: the recipient mailbox has changed owner since the date the sender gave.", "RFC 7293"},
    {7, 18, "Domain owner has changed",
     "RRVS: the recipient's domain has changed owner since the date the sender gave.", "RFC 7293"},
    {7, 19, "RRVS test cannot be completed",
     "RRVS: the receiver has no record of when the mailbox was created, so cannot check.",
     "RFC 7293"},
    {7, 20, "No passing DKIM signature found",
     "The message carries no DKIM signature that verifies.", "RFC 7372 3.1"},
    {7, 21, "No acceptable DKIM signature found",
     "Some DKIM signatures verify, but none is acceptable to the receiver's policy.",
     "RFC 7372 3.1"},
    {7, 22, "No valid author-matched DKIM signature found",
     "No verifying, acceptable DKIM signature matches the From address.", "RFC 7372 3.1"},
    {7, 23, "SPF validation failed",
     "The sending host is not allowed by the sender domain's SPF record.", "RFC 7372 3.2"},
    {7, 24, "SPF validation error", "Checking SPF for the sender domain failed with an error.",
     "RFC 7372 3.2"},
    {7, 25, "Reverse DNS validation failed",
     "The client's IP address failed the receiver's reverse DNS check.", "RFC 7372 3.3"},
    {7, 26, "Multiple authentication checks failed",
     "The message failed more than one authentication check (SPF, DKIM, ...).", "RFC 7372 3.4"},
    {7, 27, "Sender address has null MX",
     "The sender's domain publishes a null MX, so no bounce could be delivered to it.", "RFC 7505"},
    {7, 28, "Mail flood detected",
     "The message looks like part of a flood of similar abusive messages.",
     "IANA registry (draft-levine-mailbomb-header)"},
    {7, 29, "ARC validation failure",
     "The message failed ARC (Authenticated Received Chain) "
     "validation.",
     "RFC 8617"},
    {7, 30, "REQUIRETLS support required",
     "The message requires TLS all the way (REQUIRETLS), but the next hop does not offer it.",
     "RFC 8689"},
};

#define NTABLE (sizeof table / sizeof table[0])

size_t sk_enhanced_size(void)
{
    return NTABLE;
}

const sk_enhanced_entry *sk_enhanced_entry_at(size_t i)
{
    return i < NTABLE ? &table[i] : NULL;
}

const sk_enhanced_entry *sk_enhanced_lookup(int subject, int detail)
{
    for (size_t i = 0; i < NTABLE; i++)
        if (table[i].subject == subject && table[i].detail == detail)
            return &table[i];
    return NULL;
}

const sk_enhanced_entry *sk_enhanced_subject(int subject)
{
    return sk_enhanced_lookup(subject, -1);
}
