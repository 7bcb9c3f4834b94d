#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, on Debian: python3 (the imaplib
# client that talks to `mailmig fake-imap serve`), junitparser (a standard JUnit reader for
# the scenario runner's output), and the real IMAP servers (scripts/install-real-servers.sh).
# Does nothing when they are already there.
set -euo pipefail
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
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
"$(dirname "$0")/install-real-servers.sh"
