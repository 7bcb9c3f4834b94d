#!/usr/bin/env bash
# The performance gate CI trusts: instructions, not seconds. Each workload of
# benches/benches/gate.rs (fake-imap -> engine -> tenant copies, a no-op re-sync, CSV parsing,
# fake-imap serving) runs under valgrind's callgrind, which counts the instructions of its
# measured section only; the counts are compared with benches/gate-baseline.txt.
#
#   scripts/perf-gate.sh            check: fails when a workload costs more than
#                                   MAILMIG_GATE_THRESHOLD percent (default 3) over its baseline
#   scripts/perf-gate.sh --update   measure and rewrite the baseline; commit it with the change
#                                   that moved it, saying why
#
# Counts repeat to within 0.5% run to run (valgrind's CPU is the same on every x86_64 host);
# a faster workload is reported, and the baseline can be lowered with --update.
set -euo pipefail
cd "$(dirname "$0")/.."
update=false
if [ "${1:-}" = "--update" ]; then update=true; fi
threshold="${MAILMIG_GATE_THRESHOLD:-3}"
baseline=benches/gate-baseline.txt

if ! command -v valgrind >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "perf-gate: needs valgrind; run as root or install it" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
fi

exe=$(cargo bench -p mailmig-benches --bench gate --no-run --locked --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "gate" and m.get("executable"):
        print(m["executable"])')
if [ -z "$exe" ]; then
  echo "perf-gate: could not build benches/benches/gate.rs" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
workloads=$("$exe" | awk 'NR > 1 { print $1 }')
: > "$out/counts"
for w in $workloads; do
  if ! valgrind --tool=callgrind --callgrind-out-file="$out/$w.cg" --collect-atstart=no \
      '--toggle-collect=*measured_section*' "$exe" "$w" > "$out/$w.log" 2>&1; then
    echo "perf-gate: the workload $w failed:" >&2
    tail -20 "$out/$w.log" >&2
    exit 1
  fi
  n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$w.log")
  echo "$w $n" >> "$out/counts"
done

if $update; then
  {
    echo "# Instructions of each perf-gate workload's measured section (scripts/perf-gate.sh)."
    echo "# $(valgrind --version), $(rustc --version)"
    cat "$out/counts"
  } > "$baseline"
  echo "perf-gate: wrote $baseline:"
  cat "$out/counts"
  exit 0
fi

python3 - "$baseline" "$out/counts" "$threshold" <<'EOF'
import sys
baseline_path, counts_path, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
def read(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            name, n = line.split()
            out[name] = int(n)
    return out
try:
    base = read(baseline_path)
except FileNotFoundError:
    sys.exit(f"perf-gate: no {baseline_path}: run scripts/perf-gate.sh --update and commit it")
now = read(counts_path)
print(f"{'workload':<14} {'baseline':>15} {'now':>15} {'change':>8}")
worse = []
for name, n in now.items():
    b = base.get(name)
    if b is None:
        print(f"{name:<14} {'-':>15} {n:>15,} {'new':>8}")
        worse.append(f"{name} has no baseline")
        continue
    change = (n - b) * 100.0 / b
    print(f"{name:<14} {b:>15,} {n:>15,} {change:>+7.2f}%")
    if change > threshold:
        worse.append(f"{name} costs {change:.1f}% more instructions than its baseline")
if worse:
    print(f"perf-gate: FAILED (threshold {threshold:g}%): " + "; ".join(worse), file=sys.stderr)
    print("If this is on purpose, run scripts/perf-gate.sh --update and commit "
          f"{baseline_path} with the change, saying why.", file=sys.stderr)
    sys.exit(1)
print(f"perf-gate: every workload within {threshold:g}% of its baseline")
EOF
