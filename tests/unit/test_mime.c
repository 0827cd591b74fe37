/*
 * test_mime.c - MIME encodings and message building: base64 line length
 * (RFC 2045 6.8), quoted-printable (6.7), header folding (RFC 5322 2.2.3),
 * RFC 2047 encoded-words, multipart boundaries (RFC 2046 5.1.1), RFC 2231
 * file names, and the whole message (RFC 5322 3.6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "smtpkit/address.h"
#include "smtpkit/client.h"

/* ---- helpers: decoders written independently of the encoders ---------- */

static size_t b64_decode(const char *in, size_t n, unsigned char *out)
{
    /* Strip line breaks, decode with OpenSSL, then drop the padding bytes. */
    char *clean = calloc(1, n + 1);
    assert_non_null(clean);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] != '\r' && in[i] != '\n')
            clean[k++] = in[i];
    int w = EVP_DecodeBlock(out, (unsigned char *)clean, (int)k);
    assert_true(w >= 0);
    size_t len = (size_t)w;
    if (k >= 1 && clean[k - 1] == '=')
        len--;
    if (k >= 2 && clean[k - 2] == '=')
        len--;
    free(clean);
    return len;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t qp_decode(const char *in, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=' && i + 2 < n && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2; /* soft break */
        } else if (in[i] == '=') {
            assert_true(i + 2 < n);
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            assert_true(h >= 0 && l >= 0);
            out[k++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[k++] = in[i];
        }
    }
    return k;
}

/* Longest line (without CRLF) in s. */
static size_t longest_line(const char *s, size_t n)
{
    size_t best = 0, cur = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
            cur = 0;
            i++;
            continue;
        }
        if (++cur > best)
            best = cur;
    }
    return best;
}

/* Unfold a header block and decode every "=?UTF-8?B?...?=" in it, joining
 * adjacent encoded-words (RFC 2047 6.2). Checks each word's length. */
static char *decode_header_value(const char *v)
{
    size_t n = strlen(v);
    char *out = calloc(1, n * 2 + 1);
    size_t k = 0;
    size_t i = 0;
    int last_was_word = 0;
    while (i < n) {
        if (!strncmp(v + i, "=?UTF-8?B?", 10)) {
            const char *end = strstr(v + i + 10, "?=");
            assert_non_null(end);
            size_t wl = (size_t)(end + 2 - (v + i));
            assert_true(wl <= 75); /* RFC 2047 2 */
            unsigned char dec[128];
            size_t dl = b64_decode(v + i + 10, (size_t)(end - (v + i + 10)), dec);
            /* Every word holds whole UTF-8 characters (RFC 2047 5). */
            assert_true(sk_utf8_valid((char *)dec, dl));
            memcpy(out + k, dec, dl);
            k += dl;
            i += wl;
            last_was_word = 1;
            continue;
        }
        if (v[i] == '\r' || v[i] == '\n' ||
            ((v[i] == ' ' || v[i] == '\t') && last_was_word && !strncmp(v + i + 1, "=?", 2))) {
            i++; /* folding, or white space between two encoded-words */
            continue;
        }
        if (v[i] == ' ' && last_was_word) {
            size_t j = i;
            while (j < n && (v[j] == ' ' || v[j] == '\r' || v[j] == '\n'))
                j++;
            if (!strncmp(v + j, "=?", 2)) {
                i = j;
                continue;
            }
        }
        last_was_word = 0;
        out[k++] = v[i++];
    }
    out[k] = '\0';
    return out;
}

/* ---- base64 / quoted-printable ----------------------------------------- */

static void test_base64_lines(void **state)
{
    (void)state;
    unsigned char data[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 0; n <= sizeof data; n += 37) {
        sk_buf b;
        sk_buf_init(&b, 0);
        assert_int_equal(sk_mime_base64(data, n, &b), 0);
        assert_true(longest_line(b.data ? b.data : "", b.len) <= 76);
        /* Every line ends with CRLF, no bare LF. */
        for (size_t i = 0; i < b.len; i++)
            if (b.data[i] == '\n')
                assert_true(i > 0 && b.data[i - 1] == '\r');
        unsigned char back[1100];
        size_t bl = b.len ? b64_decode(b.data, b.len, back) : 0;
        assert_int_equal(bl, n);
        assert_memory_equal(back, data, n);
        sk_buf_free(&b);
    }
}

static void test_qp(void **state)
{
    (void)state;
    const char *in = "plain line\r\n"
                     "a=b and trailing space \r\n"
                     "tab at end\t\r\n"
                     "\xc3\xbc"
                     "ber 8-bit\r\n"
                     "0123456789012345678901234567890123456789012345678901234567890123456789"
                     "0123456789012345678901234567890123456789\r\n"
                     "no final newline ";
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_mime_qp(in, strlen(in), &b), 0);
    assert_true(longest_line(b.data, b.len) <= 76);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.data[i];
        assert_true(c < 0x80);
        if (b.data[i] == '\r' || b.data[i] == '\n')
            continue;
        assert_true(c >= 0x20 || c == '\t');
    }
    assert_non_null(strstr(b.data, "a=3Db"));
    assert_non_null(strstr(b.data, "space=20\r\n"));
    assert_non_null(strstr(b.data, "end=09\r\n"));
    assert_non_null(strstr(b.data, "=C3=BCber"));
    assert_non_null(strstr(b.data, "newline=20"));
    char back[1024];
    size_t bl = qp_decode(b.data, b.len, back);
    assert_int_equal(bl, strlen(in));
    assert_memory_equal(back, in, bl);
    sk_buf_free(&b);
}

/* ---- headers ------------------------------------------------------------- */

static void test_header_ascii_fold(void **state)
{
    (void)state;
    const char *v = "a fairly long subject line that goes on and on well past the seventy-eight "
                    "character recommendation of RFC 5322 so it must be folded somewhere";
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_mime_header(&b, "Subject", v), 0);
    assert_true(longest_line(b.data, b.len) <= 78);
    assert_non_null(strstr(b.data, "\r\n "));
    /* Unfolding (remove CRLF before WSP) gives back the original. */
    char un[512];
    size_t k = 0;
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == '\r' && b.data[i + 1] == '\n') {
            i++;
            continue;
        }
        un[k++] = b.data[i];
    }
    un[k] = '\0';
    assert_int_equal(strncmp(un, "Subject: ", 9), 0);
    assert_string_equal(un + 9, v);
    sk_buf_free(&b);
}

static void test_header_encoded_words(void **state)
{
    (void)state;
    const char *v = "Gr\xc3\xbc\xc3\x9f"
                    "e aus K\xc3\xb6ln \xe2\x80\x93 ein l\xc3\xa4ngerer "
                    "Betreff mit Emoji \xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80 und "
                    "noch mehr Text, der \xc3\xbc"
                    "ber die Grenze geht";
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_mime_header(&b, "Subject", v), 0);
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] < 0x80); /* pure ASCII on the wire */
    assert_true(longest_line(b.data, b.len) <= 78);
    assert_int_equal(strncmp(b.data, "Subject: =?UTF-8?B?", 19), 0);
    char *dec = decode_header_value(b.data + 9);
    assert_string_equal(dec, v);
    free(dec);
    sk_buf_free(&b);
}

static void test_header_injection(void **state)
{
    (void)state;
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_mime_header(&b, "Subject", "hi\r\nBcc: victim@example.org"), -1);
    assert_int_equal(sk_mime_header(&b, "Subject", "hi\nX: y"), -1);
    assert_int_equal(b.len, 0);
    sk_buf_free(&b);
}

static void test_phrase(void **state)
{
    (void)state;
    sk_buf b;
    sk_buf_init(&b, 0);
    assert_int_equal(sk_mime_phrase(&b, "Alice Example"), 0);
    assert_string_equal(b.data, "Alice Example");
    sk_buf_clear(&b);
    assert_int_equal(sk_mime_phrase(&b, "Example, Alice \"Al\""), 0);
    assert_string_equal(b.data, "\"Example, Alice \\\"Al\\\"\"");
    sk_buf_clear(&b);
    assert_int_equal(sk_mime_phrase(&b, "J\xc3\xb6rg"), 0);
    assert_string_equal(b.data, "=?UTF-8?B?SsO2cmc=?=");
    sk_buf_free(&b);
}

static void test_boundary_and_types(void **state)
{
    (void)state;
    char a[48], b[48];
    sk_mime_boundary(a, sizeof a);
    sk_mime_boundary(b, sizeof b);
    assert_int_equal(strncmp(a, "=_", 2), 0);
    assert_true(strlen(a) <= 40 && strlen(a) > 20);
    assert_string_not_equal(a, b);
    assert_string_equal(sk_mime_type_for("report.PDF"), "application/pdf");
    assert_string_equal(sk_mime_type_for("a.tar.gz"), "application/gzip");
    assert_string_equal(sk_mime_type_for("noext"), "application/octet-stream");
    assert_string_equal(sk_mime_type_for("trailingdot."), "application/octet-stream");
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(sk_utf8_valid("plain", 5));
    assert_true(sk_utf8_valid("\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(sk_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(sk_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(sk_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(sk_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(sk_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(sk_utf8_valid("\xff", 1));
}

static void test_address_extract(void **state)
{
    (void)state;
    char a[256];
    assert_int_equal(sk_address_extract("user@example.org", a, sizeof a), 0);
    assert_string_equal(a, "user@example.org");
    assert_int_equal(sk_address_extract("  Alice <alice@example.org> ", a, sizeof a), 0);
    assert_string_equal(a, "alice@example.org");
    assert_int_equal(sk_address_extract("\"Doe, J\" <j@example.org>", a, sizeof a), 0);
    assert_string_equal(a, "j@example.org");
    assert_int_equal(sk_address_extract("<>", a, sizeof a), 0);
    assert_string_equal(a, "");
    assert_int_equal(sk_address_extract("no-at-sign", a, sizeof a), -1);
    assert_int_equal(sk_address_extract("a b@example.org", a, sizeof a), -1);
    assert_int_equal(sk_address_extract("<a@b> trailing", a, sizeof a), -1);
    assert_int_equal(sk_address_extract("<a@b", a, sizeof a), -1);
    assert_int_equal(sk_address_extract("x <a@b><c@d>", a, sizeof a), -1);
    assert_int_equal(sk_address_extract("a@b\r\nRCPT TO:<x@y>", a, sizeof a), -1);
    assert_int_equal(sk_address_extract("@example.org", a, sizeof a), -1);
}

/* ---- whole messages ------------------------------------------------------ */

static char *header_of(const char *msg, const char *name)
{
    /* The unfolded value of the first header `name`, or NULL. */
    size_t nl = strlen(name);
    const char *end = strstr(msg, "\r\n\r\n");
    const char *p = msg;
    while (p && p < end) {
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            char *out = calloc(1, 4096);
            size_t k = 0;
            while (v < end + 2) {
                if (v[0] == '\r' && v[1] == '\n') {
                    if (v[2] == ' ' || v[2] == '\t') {
                        v += 2;
                        continue;
                    }
                    break;
                }
                out[k++] = *v++;
            }
            return out;
        }
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return NULL;
}

static void test_message_simple(void **state)
{
    (void)state;
    const char *to[] = {"Bob <bob@example.net>", "carol@example.net"};
    const char *cc[] = {"dave@example.net"};
    sk_message_spec m;
    memset(&m, 0, sizeof m);
    m.from = "Alice <alice@example.org>";
    m.to = to;
    m.nto = 2;
    m.cc = cc;
    m.ncc = 1;
    m.subject = "Hello";
    m.body = "line one\n.line two\n";
    m.bodylen = strlen(m.body);
    m.date = 86400 * 365LL;
    m.message_id = "<fixed@example.org>";
    sk_buf out;
    sk_buf_init(&out, 0);
    sk_message_info info;
    char err[200];
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), 0);
    assert_false(info.body_8bit);
    assert_false(info.utf8_addr);
    char *v = header_of(out.data, "From");
    assert_string_equal(v, "Alice <alice@example.org>");
    free(v);
    v = header_of(out.data, "To");
    assert_string_equal(v, "Bob <bob@example.net>, carol@example.net");
    free(v);
    v = header_of(out.data, "Cc");
    assert_string_equal(v, "dave@example.net");
    free(v);
    v = header_of(out.data, "Message-ID");
    assert_string_equal(v, "<fixed@example.org>");
    free(v);
    v = header_of(out.data, "Date");
    assert_non_null(v);
    /* "Thu, 01 Jan 1971 00:00:00 +0000" in UTC; the zone depends on TZ. */
    assert_true(strlen(v) == 31 && v[3] == ',' && (v[26] == '+' || v[26] == '-'));
    free(v);
    assert_null(header_of(out.data, "MIME-Version")); /* plain ASCII needs none */
    assert_null(header_of(out.data, "Bcc"));
    /* Body: CRLF line ends, not dot-stuffed here (that happens at DATA). */
    const char *body = strstr(out.data, "\r\n\r\n") + 4;
    assert_string_equal(body, "line one\r\n.line two\r\n");
    sk_buf_free(&out);
}

static void test_message_8bit(void **state)
{
    (void)state;
    const char *to[] = {"b@example.net"};
    sk_message_spec m;
    memset(&m, 0, sizeof m);
    m.from = "J\xc3\xb6rg <j@example.org>";
    m.to = to;
    m.nto = 1;
    m.body = "Gr\xc3\xbc\xc3\x9f"
             "e\n";
    m.bodylen = strlen(m.body);
    sk_buf out;
    sk_message_info info;
    char err[200];

    /* Without 8BITMIME: quoted-printable. */
    sk_buf_init(&out, 0);
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), 0);
    assert_false(info.body_8bit);
    for (size_t i = 0; i < out.len; i++)
        assert_true((unsigned char)out.data[i] < 0x80);
    char *v = header_of(out.data, "Content-Transfer-Encoding");
    assert_string_equal(v, "quoted-printable");
    free(v);
    v = header_of(out.data, "Content-Type");
    assert_string_equal(v, "text/plain; charset=utf-8");
    free(v);
    v = header_of(out.data, "From");
    assert_string_equal(v, "=?UTF-8?B?SsO2cmc=?= <j@example.org>");
    free(v);
    assert_non_null(strstr(out.data, "\r\n\r\nGr=C3=BC=C3=9Fe\r\n"));
    sk_buf_free(&out);

    /* With 8BITMIME: sent as 8bit, and the envelope must say so. */
    m.allow_8bit = 1;
    sk_buf_init(&out, 0);
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), 0);
    assert_true(info.body_8bit);
    v = header_of(out.data, "Content-Transfer-Encoding");
    assert_string_equal(v, "8bit");
    free(v);
    assert_non_null(strstr(out.data, "\r\n\r\nGr\xc3\xbc\xc3\x9f"
                                     "e\r\n"));
    sk_buf_free(&out);
}

static void test_message_long_lines(void **state)
{
    (void)state;
    const char *to[] = {"b@example.net"};
    char *body = malloc(3001);
    memset(body, 'x', 3000);
    body[3000] = '\0';
    sk_message_spec m;
    memset(&m, 0, sizeof m);
    m.from = "a@example.org";
    m.to = to;
    m.nto = 1;
    m.body = body;
    m.bodylen = 3000;
    m.allow_8bit = 1;
    sk_buf out;
    sk_buf_init(&out, 0);
    sk_message_info info;
    char err[200];
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), 0);
    assert_true(longest_line(out.data, out.len) <= 998); /* RFC 5322 2.1.1 */
    char *v = header_of(out.data, "Content-Transfer-Encoding");
    assert_string_equal(v, "quoted-printable");
    free(v);
    sk_buf_free(&out);
    free(body);
}

static void test_message_attachments(void **state)
{
    (void)state;
    const char *to[] = {"b@example.net"};
    unsigned char bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)i;
    sk_attachment att[2] = {
        {"data.bin", NULL, (const char *)bin, sizeof bin},
        {"R\xc3\xa9sum\xc3\xa9 2024.pdf", NULL, "%PDF-1.4\n", 9},
    };
    sk_message_spec m;
    memset(&m, 0, sizeof m);
    m.from = "a@example.org";
    m.to = to;
    m.nto = 1;
    m.subject = "files";
    m.body = "see attached";
    m.bodylen = strlen(m.body);
    m.att = att;
    m.natt = 2;
    sk_buf out;
    sk_buf_init(&out, 0);
    sk_message_info info;
    char err[200];
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), 0);
    char *ct = header_of(out.data, "Content-Type");
    assert_non_null(ct);
    assert_int_equal(strncmp(ct, "multipart/mixed; boundary=\"", 27), 0);
    char boundary[64];
    const char *bs = ct + 27;
    size_t bl = strcspn(bs, "\"");
    memcpy(boundary, bs, bl);
    boundary[bl] = '\0';
    free(ct);
    char delim[80], close_[80];
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", boundary);
    snprintf(close_, sizeof close_, "\r\n--%s--\r\n", boundary);
    /* Three parts, then the close delimiter at the very end. */
    size_t parts = 0;
    for (const char *p = out.data; (p = strstr(p, delim)); p += strlen(delim))
        parts++;
    assert_int_equal(parts, 3);
    assert_string_equal(out.data + out.len - strlen(close_), close_);
    assert_non_null(strstr(out.data, "Content-Type: application/pdf;"));
    assert_non_null(strstr(out.data, "filename*=utf-8''R%C3%A9sum%C3%A9%202024.pdf"));
    assert_non_null(strstr(out.data, "Content-Type: application/octet-stream; name=\"data.bin\""));
    /* The binary attachment decodes back to the same bytes. */
    const char *p = strstr(out.data, "name=\"data.bin\"");
    p = strstr(p, "\r\n\r\n") + 4;
    const char *e = strstr(p, delim);
    unsigned char back[400];
    assert_int_equal(b64_decode(p, (size_t)(e - p), back), sizeof bin);
    assert_memory_equal(back, bin, sizeof bin);
    assert_true(longest_line(out.data, out.len) <= 78);
    sk_buf_free(&out);
}

static void test_message_bad_input(void **state)
{
    (void)state;
    const char *to[] = {"b@example.net"};
    const char *bad_to[] = {"not an address"};
    const char *hdr_ct[] = {"Content-Type: text/html"};
    const char *hdr_bad[] = {"No Colon Here"};
    const char *hdr_ok[] = {"X-Mailer: test", "Subject: from header"};
    sk_message_spec m;
    memset(&m, 0, sizeof m);
    m.from = "a@example.org";
    m.to = to;
    m.nto = 1;
    m.subject = "s";
    sk_buf out;
    sk_message_info info;
    char err[200];

    sk_buf_init(&out, 0);
    m.headers = hdr_ct;
    m.nheaders = 1;
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), -1);
    assert_non_null(strstr(err, "Content-Type"));
    m.headers = hdr_bad;
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), -1);
    m.headers = NULL;
    m.nheaders = 0;
    m.to = bad_to;
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an address"));
    m.to = to;
    m.subject = "bad \xff utf-8";
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), -1);
    sk_buf_free(&out);

    /* A user Subject header replaces the generated one. */
    m.subject = "generated";
    m.headers = hdr_ok;
    m.nheaders = 2;
    sk_buf_init(&out, 0);
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), 0);
    char *v = header_of(out.data, "Subject");
    assert_string_equal(v, "from header");
    free(v);
    assert_null(strstr(out.data, "generated"));
    sk_buf_free(&out);

    /* A non-ASCII address asks for SMTPUTF8. */
    const char *utf_to[] = {"j\xc3\xb6rg@example.net"};
    m.to = utf_to;
    m.headers = NULL;
    m.nheaders = 0;
    sk_buf_init(&out, 0);
    assert_int_equal(sk_message_build(&m, &out, &info, err, sizeof err), 0);
    assert_true(info.utf8_addr);
    sk_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_lines),        cmocka_unit_test(test_qp),
        cmocka_unit_test(test_header_ascii_fold),   cmocka_unit_test(test_header_encoded_words),
        cmocka_unit_test(test_header_injection),    cmocka_unit_test(test_phrase),
        cmocka_unit_test(test_boundary_and_types),  cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_address_extract),     cmocka_unit_test(test_message_simple),
        cmocka_unit_test(test_message_8bit),        cmocka_unit_test(test_message_long_lines),
        cmocka_unit_test(test_message_attachments), cmocka_unit_test(test_message_bad_input),
    };
    return cmocka_run_group_tests_name("mime", tests, NULL, NULL);
}
