#!/bin/sh
# Writes tests/unit/dovecot_pw_vectors.h: one stored password per Dovecot
# scheme, made by Dovecot's own `doveadm pw` (dovecot-core), for
# test_password_scheme.c. Run again after a Dovecot upgrade:
#   sh tests/unit/make_dovecot_pw_vectors.sh > tests/unit/dovecot_pw_vectors.h
set -eu
PW='c0rrect horse:béta'
echo "/* dovecot_pw_vectors.h - made by make_dovecot_pw_vectors.sh with"
echo " * \`doveadm pw -s SCHEME -p PASSWORD\` (Dovecot $(dovecot --version | cut -d" " -f1)). */"
echo "#define DOVECOT_PW_PASSWORD \"$PW\""
echo "static const struct { const char *scheme; const char *stored; } dovecot_pw_vectors[] = {"
for s in ARGON2ID ARGON2I SHA512-CRYPT SHA256-CRYPT BLF-CRYPT MD5-CRYPT DES-CRYPT CRYPT MD5 \
         SSHA512 SSHA256 SSHA SMD5 SHA512 SHA256 SHA SHA1 LDAP-MD5 PLAIN-MD5 SHA256.HEX \
         SSHA512.HEX PBKDF2 SCRAM-SHA-1 SCRAM-SHA-256 PLAIN CLEAR CLEARTEXT; do
    v=$(doveadm -c /dev/null pw -s "$s" -p "$PW" 2>/dev/null || doveadm pw -s "$s" -p "$PW")
    printf '    {"%s", "%s"},\n' "$s" "$(printf '%s' "$v" | sed 's/\\/\\\\/g; s/"/\\"/g')"
done
echo "};"
