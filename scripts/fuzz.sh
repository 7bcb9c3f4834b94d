#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (seconds, default 60) on the nightly toolchain.
# Not part of the test command (too slow); see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
for target in csv_parse imap_replies fake_imap_commands tenant_import; do
  echo "== $target (${seconds}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 2>&1 | tail -n 4
done
