#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, on Debian: python3 (the imaplib
# client that talks to `mailmig fake-imap serve`), junitparser (a standard JUnit reader for
# the scenario runner's output), exchangelib (an EWS client for fake-exchange), curl and
# ldap-utils' ldapsearch (Autodiscover and the directory of `mailmig fake-exchange serve`),
# Chromium (the rehearsal report in a real browser), and the real IMAP servers (scripts/install-real-servers.sh).
# Does nothing when they are already there.
set -euo pipefail
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ldapsearch >/dev/null 2>&1 || missing+=(ldap-utils)
# Headless Chromium renders the rehearsal's report.html in a test (screenshot, DOM).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: need ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! python3 -c 'import junitparser' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore junitparser
fi
# Pinned: the EWS test follows this version's requests (version guess by ConvertId, folder
# discovery by GetFolder + FindFolder, sync_items, fault tolerance).
if ! python3 -c 'import exchangelib, sys; sys.exit(exchangelib.__version__ != "5.6.0")' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore exchangelib==5.6.0
fi
"$(dirname "$0")/install-real-servers.sh"
