#!/usr/bin/env bash
# mailmig beside its peers, Dovecot to Dovecot over loopback TLS (benches/src/bin/peers.rs):
# real Dovecot source and target from the real-server fixtures, three workloads, mailmig,
# mbsync, doveadm backup and bare pipelined APPEND/FETCH clients interleaved, every copy
# checked, medians printed as a Markdown table.
#
#   scripts/peers.sh                    # medians of 3 (about 3 minutes once built)
#   scripts/peers.sh --reps 1 --scale-down 20   # a quick check that every peer still runs
#   scripts/peers.sh --only mailmig,append --workload w4k   # a quick look at one pair
#   scripts/peers.sh --only tenant --workload w4k --reps 1 --perf /tmp/pf   # perf record each
#                                       timed mailmig run (perf report -i /tmp/pf/w4k-Tenant-0.data;
#                                       the times then include perf's overhead)
#   MAILMIG_LOG=engine::imap=trace scripts/peers.sh --only tenant --workload w4k --logs /tmp/lg
#                                       # each timed run's standard error: its IMAP commands
#                                       # and replies with timestamps (no perf overhead)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mbsync >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "peers: needs mbsync (Debian's isync); run as root or install it" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq isync
fi
if [ ! -x /usr/sbin/dovecot ]; then
  scripts/install-real-servers.sh
fi
cargo build --release --locked -p mailmig --bin mailmig -p mailmig-benches --bin peers
exec target/release/peers --mailmig target/release/mailmig "$@"
