#!/bin/sh
# Proves that every external program the tests call can do what the tests ask
# of it, not merely that its package is installed: a package installed without
# its recommends (swaks without Net::SSLeay, say) passes dpkg but fails a test.
# Run first by `make check`; prints one line per capability and exits 1 if any
# is missing, naming the Debian package that brings it.
set -u
PYTHON=${PYTHON:-/usr/bin/python3}
fail=0
ok()   { printf 'deps-verify: ok       %s\n' "$1"; }
bad()  { printf 'deps-verify: MISSING  %s (Debian package: %s)\n' "$1" "$2" >&2; fail=1; }
check() { # description package command...
    d=$1 p=$2; shift 2
    if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d" "$p"; fi
}

# swaks: plain SMTP, and STARTTLS/implicit TLS (needs Net::SSLeay and
# IO::Socket::SSL), AUTH PLAIN/LOGIN (MIME::Base64, in perl itself).
check "swaks" swaks swaks --version
check "swaks --tls (Net::SSLeay, IO::Socket::SSL)" "libnet-ssleay-perl libio-socket-ssl-perl" \
    sh -c 'swaks --support 2>&1 | grep -q "^=== TLS supported"'
check "swaks --auth" swaks sh -c 'swaks --support 2>&1 | grep -q "^=== Basic AUTH supported"'
# curl: smtp:// and smtps:// with TLS.
check "curl smtp and smtps" curl sh -c 'curl -V | grep "^Protocols:" | grep -qw smtps && curl -V | grep "^Protocols:" | grep -qw smtp'
check "curl TLS" curl sh -c 'curl -V | grep "^Features:" | grep -qw SSL'
# openssl: self-signed certificates for the TLS tests.
check "openssl req" openssl sh -c 'openssl req -help 2>&1 | grep -q -- -x509'
# openssl ca with chosen validity dates: expired and not-yet-valid
# certificates for the probe tests.
check "openssl ca -startdate/-enddate" openssl sh -c \
    'openssl ca -help 2>&1 | grep -q -- -startdate && openssl ca -help 2>&1 | grep -q -- -enddate'
# dnsmasq: the test zone for MX lookups.
check "dnsmasq" dnsmasq-base sh -c 'command -v dnsmasq || test -x /usr/sbin/dnsmasq'
# postfix: a private instance (postfix -c DIR, its daemons as user postfix)
# and smtp-sink, the receiving MX of the delivery tests.
check "postfix (postfix -c DIR, user postfix, group postdrop)" postfix sh -c \
    'command -v postfix && test -x /usr/lib/postfix/sbin/master && id postfix && getent group postdrop'
check "smtp-sink" postfix sh -c 'command -v smtp-sink || test -x /usr/sbin/smtp-sink'
# dovecot: a private instance with IMAP, LMTP and Sieve (tests/e2e/dovecot).
check "dovecot with imap, lmtp, sieve" "dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve" sh -c \
    'command -v dovecot && test -x /usr/lib/dovecot/imap && test -x /usr/lib/dovecot/lmtp && test -e /usr/lib/dovecot/modules/lib90_sieve_plugin.so'
# doveadm pw: the password vectors of the unit tests and the shared
# password file of tests/e2e/dovecot ({ARGON2ID} needs Dovecot's libargon2 build).
check "doveadm pw -s ARGON2ID" dovecot-core sh -c 'doveadm pw -s ARGON2ID -p x | grep -q "^{ARGON2ID}"'
# libargon2: smtpkit links it ({ARGON2ID} passwords).
check "libargon2 (pkg-config)" libargon2-dev pkg-config --exists libargon2
# python3 with pytest and the modules the end-to-end tests import.
for m in pytest aiosmtpd ssl smtplib email base64 pty; do
    case $m in pytest) p=python3-pytest ;; aiosmtpd) p=python3-aiosmtpd ;; *) p=python3 ;; esac
    check "python3 module $m" "$p" "$PYTHON" -c "import $m"
done
# the metrics test checks the exposition with an independent parser
check "python3 module prometheus_client.parser" python3-prometheus-client \
    "$PYTHON" -c "from prometheus_client.parser import text_string_to_metric_families"
check "python3 ssl with TLS 1.3" python3 "$PYTHON" -c 'import ssl,sys; sys.exit(not ssl.HAS_TLSv1_3)'
# cmocka for the unit tests; clang's fuzzer and sanitizer runtimes.
check "cmocka headers" libcmocka-dev sh -c 'pkg-config --exists cmocka || test -f /usr/include/cmocka.h'
check "clang libFuzzer runtime" libclang-rt-14-dev sh -c \
    'd=$(mktemp -d) && printf "#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n" > $d/f.c && clang -fsanitize=fuzzer,address,undefined -o $d/f $d/f.c; r=$?; rm -rf $d; exit $r'
# haproxy: a real PROXY protocol sender (send-proxy, send-proxy-v2) in front
# of the server; its configuration check proves both keywords are known.
check "haproxy send-proxy/send-proxy-v2" haproxy sh -c \
    'd=$(mktemp -d) && printf "defaults\n mode tcp\n timeout connect 1s\n timeout client 1s\n timeout server 1s\nlisten a\n bind 127.0.0.1:1\n server s1 127.0.0.1:1 send-proxy\nlisten b\n bind 127.0.0.1:2\n server s2 127.0.0.1:1 send-proxy-v2\n" > $d/h.cfg && haproxy -c -q -f $d/h.cfg; r=$?; rm -rf $d; exit $r'
# systemd-analyze: the installed unit is verified and its sandbox rated
# offline (no running systemd needed).
check "systemd-analyze verify/security --offline" systemd sh -c \
    'systemd-analyze verify --help | grep -q -- --man && systemd-analyze security --help | grep -q -- --offline'
# libsystemd: log = "journal" is built (and tested) only where it is found.
check "libsystemd (log = journal)" libsystemd-dev pkg-config --exists libsystemd
check "unshare (private journald socket in the journal test)" util-linux sh -c 'command -v unshare'
# The packaging test: lexgrog parses each manual page's NAME line as apropos
# does; pkg-config reads the installed smtpkit.pc.
check "lexgrog" man-db sh -c 'printf ".TH X 1\n.SH NAME\nx \\\\- y\n" > "${TMPDIR:-/tmp}/deps-verify-$$.1" && lexgrog "${TMPDIR:-/tmp}/deps-verify-$$.1"; r=$?; rm -f "${TMPDIR:-/tmp}/deps-verify-$$.1"; exit $r'
check "pkg-config" pkg-config pkg-config --version
# postfix: a private instance (own config, queue and data directories) for
# `smtpkit audit` to judge; no system instance is needed or started.
check "postfix (master, smtpd, postconf)" postfix sh -c \
    'test -x /usr/sbin/postfix && test -x /usr/lib/postfix/sbin/smtpd && postconf -d mail_version | grep -q "mail_version = "'
# chromium + chromedriver + selenium: the HTML report and `smtpkit web` in a
# real headless browser.
check "chromium --headless" chromium sh -c 'chromium --headless --no-sandbox --disable-gpu --dump-dom about:blank 2>/dev/null | grep -q "<html"'
check "chromedriver" chromium-driver sh -c 'chromedriver --version | grep -q ChromeDriver'
check "python3 module selenium" python3-selenium "$PYTHON" -c "from selenium import webdriver; from selenium.webdriver.chrome.options import Options"
# real milters for tests/e2e/milter: OpenDKIM (its key made by
# opendkim-genkey; TestPublicKeys instead of DNS) and rspamd's proxy worker
# in milter mode; dkimpy verifies the signatures independently.
check "opendkim (TestPublicKeys)" opendkim sh -c 'opendkim -V | grep -q "OpenDKIM Filter" && grep -aq TestPublicKeys "$(command -v opendkim)"'
check "opendkim-genkey" opendkim-tools sh -c 'command -v opendkim-genkey || test -x /usr/sbin/opendkim-genkey'
check "rspamd (proxy worker, milter mode)" rspamd sh -c 'rspamd --version | grep -q "Rspamd daemon" && test -f /etc/rspamd/worker-proxy.inc'
check "python3 module dkim" python3-dkim "$PYTHON" -c "import dkim; dkim.verify"
check "cppcheck" cppcheck cppcheck --version
check "clang-format" clang-format clang-format --version

if [ "$fail" -ne 0 ]; then
    echo "deps-verify: some test dependencies cannot do what the tests need; run 'make deps-test' as root" >&2
    exit 1
fi
