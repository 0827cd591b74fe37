#!/bin/sh
# Installs the Debian packages smtpkit needs to build and test, when run as
# root; otherwise prints the exact apt-get line and fails.
# Usage: scripts/deps.sh build|test
set -eu
BUILD="build-essential clang pkg-config libssl-dev libevent-dev libconfig-dev libc-ares-dev libcrypt-dev libargon2-dev openssl libsystemd-dev"
# swaks needs its TLS modules (only Recommends in Debian) for --tls.
# postfix: a private instance (and smtp-sink) as the receiving MX of the
# delivery tests and a real server for `smtpkit audit` to judge; installed
# unconfigured, so no system-wide Postfix runs.
# man-db: lexgrog checks the manual pages.
# dovecot-*: a private Dovecot (LMTP, IMAP, SASL, Sieve) beside smtpkit.
# chromium, chromium-driver, python3-selenium: the audit's HTML report and
# `smtpkit web` are checked in a real headless browser.
# haproxy: a real PROXY protocol sender; systemd: systemd-analyze checks the
# unit offline; python3-prometheus-client parses the metrics endpoint.
# opendkim, opendkim-tools, rspamd: real milters (private instances, nothing
# system-wide is configured); python3-dkim verifies their DKIM signatures.
TEST="cppcheck clang-format libcmocka-dev python3 python3-pytest python3-aiosmtpd swaks libnet-ssleay-perl libio-socket-ssl-perl curl dnsmasq-base libclang-rt-14-dev man-db postfix dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve chromium chromium-driver python3-selenium haproxy systemd python3-prometheus-client opendkim opendkim-tools rspamd python3-dkim"
case "${1:-build}" in
  build) want="$BUILD" ;;
  test)  want="$BUILD $TEST" ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "smtpkit: installing missing Debian packages:$missing" >&2
  apt-get update -qq
  # Postfix: "No configuration" writes no /etc/postfix/main.cf, so the
  # package starts nothing and nothing listens on port 25; the tests run
  # their own instances with `postfix -c DIR`.
  case " $missing " in
    *" postfix "*) echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections ;;
  esac
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
else
  echo "smtpkit: missing Debian packages. Run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
