/*
 * password_scheme.h - Dovecot's password schemes ("{SCHEME}value", as in
 * `doveadm pw -s SCHEME`), checked at load time and verified against a
 * password (RFC 4954 section 4: the server checks PLAIN/LOGIN credentials).
 *
 * crypt(3) strings ({CRYPT}, {SHA512-CRYPT}, {SHA256-CRYPT}, {BLF-CRYPT},
 * {MD5-CRYPT}, {DES-CRYPT}, yescrypt) by libxcrypt; {ARGON2ID}/{ARGON2I}
 * by libargon2; the digests ({SHA}, {SSHA}, {SHA256}, {SSHA256}, {SHA512},
 * {SSHA512}, {LDAP-MD5}, {PLAIN-MD5}, {SMD5}), {PBKDF2} and {SCRAM-SHA-1},
 * {SCRAM-SHA-256} by OpenSSL (EVP digests, PKCS5_PBKDF2_HMAC), compared in
 * constant time; {PLAIN}/{CLEAR}/{CLEARTEXT} with a warning. A value with
 * no prefix is a crypt(3) string (Dovecot's passwd-file default).
 */
#ifndef SMTPKIT_SERVER_PASSWORD_SCHEME_H
#define SMTPKIT_SERVER_PASSWORD_SCHEME_H

#include <stddef.h>

/*
 * Can this stored password (n bytes, "{SCHEME}value" or a bare crypt
 * string) be verified? 0 yes (*note then NULL, or a static warning such as
 * "plain-text password"); -1 no, with *why a static reason ("password
 * scheme {CRAM-MD5} not supported", "SHA-512-crypt hash has the wrong
 * length"...).
 */
int sk_pwscheme_check(const char *stored, size_t n, const char **why, const char **note);

/* 1 when the password matches a stored value that sk_pwscheme_check()
 * accepted, 0 when not, -1 on an internal error (out of memory). */
int sk_pwscheme_verify(const char *stored, const char *password);

/* 1 when the scheme costs a deliberate amount of work (crypt, Argon2,
 * PBKDF2, SCRAM), 0 for a plain digest or clear text. */
int sk_pwscheme_is_slow(const char *stored);

#endif
