#!/usr/bin/env bash
# Holds fake-imap to Dovecot's IMAP compliance tester imaptest: every scripted test against
# fake-imap in plain mode (none may fail; the not-run ones lack a capability fake-imap does
# not offer: SORT, THREAD, ESORT, CATENATE, URLAUTH, NOTIFY, BINARY, CONTEXT=SEARCH), then the
# random stress mode (5 clients, 20 s, a 300-message mbox; no error may be reported).
# The transcripts in fake-imap/tests/transcripts/ pin each behaviour imaptest checks, so CI
# catches a regression without imaptest; this script is the check against the tester itself.
# usage: scripts/imaptest.sh            (imaptest's tools: $IMAPTEST_TOOLS, default
#                                        ../shared/tools/imaptest beside the checkout)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${IMAPTEST_TOOLS:-$(cd "$root/.." && pwd)/shared/tools/imaptest}
[ -x "$tools/run.sh" ] || { echo "imaptest.sh: no imaptest tools at $tools (set IMAPTEST_TOOLS)" >&2; exit 2; }
bin=$("$tools/build.sh")
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --locked -p mailmig --manifest-path "$root/Cargo.toml" >&2
cat > "$work/plain.toml" <<'TOML'
[server]
mode = "plain"
starttls = false
[[users]]
name = "imaptest"
password = "imaptest"
TOML
"$root/target/release/mailmig" fake-imap serve --config "$work/plain.toml" > "$work/serve.out" &
server=$!
for _ in $(seq 50); do grep -q '^IMAP=' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^IMAP=127.0.0.1:\([0-9]*\)$/\1/p' "$work/serve.out")
[ -n "$port" ] || { echo "imaptest.sh: fake-imap did not start" >&2; exit 1; }

echo "== scripted tests"
"$tools/run.sh" 127.0.0.1 "$port" imaptest imaptest | tee "$work/scripted.out"
grep -q ', 0 failed,' "$work/scripted.out" || { echo "imaptest.sh: scripted tests failed" >&2; exit 1; }

echo "== stress: 5 clients, 20 s, 300 messages"
# imaptest tells messages apart by Message-ID: give every message of the mbox its own.
python3 - "$(dirname "$bin")/tests" "$work/stress.mbox" <<'PY'
import glob, re, sys
msgs, cur = [], None
for f in sorted(glob.glob(sys.argv[1] + "/*.mbox")):
    cur = None
    for line in open(f, encoding="latin-1"):
        if line.startswith("From "):
            if cur: msgs.append(cur)
            cur = [line]
        elif cur is not None:
            cur.append(line)
    if cur: msgs.append(cur)
with open(sys.argv[2], "w", encoding="latin-1") as out:
    for n in range(300):
        m = [l for l in msgs[n % len(msgs)] if not re.match(r"(?i)(message-id|references|in-reply-to):", l)]
        m.insert(1, "Message-ID: <stress-%d@mailmig.test>\n" % n)
        out.write("".join(m) + ("" if m[-1].endswith("\n\n") else "\n"))
PY
LD_LIBRARY_PATH=/usr/lib/dovecot timeout 120 "$bin" host=127.0.0.1 port="$port" user=imaptest \
  pass=imaptest mbox="$work/stress.mbox" secs=20 clients=5 > "$work/stress.out" 2>&1 || true
tail -4 "$work/stress.out"
errors=$(grep -c 'Error' "$work/stress.out" || true)
echo "stress errors: $errors"
[ "$errors" = 0 ] || { grep 'Error' "$work/stress.out" | head -20 >&2; exit 1; }
echo "imaptest.sh: fake-imap passes"
