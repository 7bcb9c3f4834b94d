#!/usr/bin/env bash
# Installs the real IMAP servers the interop and differential tests run against, from Debian's
# packages: Dovecot normally; Cyrus and Courier, whose imapd packages conflict with Dovecot's
# (they all provide imap-server), by installing their common packages normally and extracting
# only cyrus-imapd and courier-imap with `apt-get download` + `dpkg -x` into
# $MAILMIG_REAL_SERVERS_DIR (default /opt/mailmig-real), where the tests run their binaries by
# path. No server is started or enabled here (the tests start throw-away instances on
# 127.0.0.1). Does nothing when everything is already there. Needs root.
set -euo pipefail
root_dir=${MAILMIG_REAL_SERVERS_DIR:-/opt/mailmig-real}
have_all() {
  for f in /usr/sbin/dovecot /usr/lib/cyrus/bin/master /usr/sbin/saslpasswd2 \
           /usr/sbin/couriertcpd /usr/bin/couriertls /usr/sbin/userdb /usr/bin/maildirmake \
           /usr/lib/courier/courier-authlib/authdaemond \
           "$root_dir/cyrus/usr/lib/cyrus/bin/imapd" "$root_dir/courier/usr/bin/imapd"; do
    [ -e "$f" ] || return 1
  done
  command -v openssl >/dev/null && command -v unshare >/dev/null
}
if have_all; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-real-servers: run as root to install Dovecot, Cyrus and Courier" >&2
  exit 1
fi
# Packages must not start their services (there is no init system here, and the tests start
# their own instances): policy-rc.d says so to invoke-rc.d.
created_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  dovecot-core dovecot-imapd \
  cyrus-common sasl2-bin \
  courier-base courier-authdaemon courier-authlib-userdb \
  openssl util-linux >/dev/null
work=$(mktemp -d)
trap '[ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d; rm -rf "$work"' EXIT
chmod 777 "$work"
(cd "$work" && apt-get download -qq cyrus-imapd courier-imap)
mkdir -p "$root_dir/cyrus" "$root_dir/courier"
dpkg -x "$work"/cyrus-imapd_*.deb "$root_dir/cyrus"
dpkg -x "$work"/courier-imap_*.deb "$root_dir/courier"
have_all || { echo "install-real-servers: something is still missing" >&2; exit 1; }
echo "install-real-servers: Dovecot $(dovecot --version | cut -d' ' -f1), Cyrus and Courier ready ($root_dir)"
