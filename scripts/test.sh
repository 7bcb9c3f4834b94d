#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then runs every test of the
# workspace (unit, transcripts, integration, the standalone server with Python's imaplib, the
# interop and differential suites against real Dovecot, Cyrus and Courier).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# The real servers are installed now: a test that cannot start one fails instead of skipping.
export MAILMIG_REQUIRE_REAL_SERVERS=1
cargo test --workspace --locked "$@"
