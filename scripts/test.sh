#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then runs every test of the
# workspace (unit, transcripts, integration, the standalone server with Python's imaplib).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --workspace --locked "$@"
