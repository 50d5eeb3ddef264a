#!/usr/bin/env bash
# Runs every test (unit and integration, against real PostgreSQL clusters that
# the tests start and stop themselves) and ends with one line:
#   N passed, N failed
# Exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
if [ ! -x "$BUN" ]; then
  echo "Bun is not installed here; run npm ci first." >&2
  echo "0 passed, 1 failed"
  exit 2
fi

# Everything a run creates (clusters, caches, mounts) lives under one directory
# that is removed at the end, whatever happened.
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pgfiles-test.XXXXXX")
chmod 755 "$RUN_DIR" # clusters run as nobody when we are root
export TMPDIR="$RUN_DIR"
cleanup() {
  # A test process killed mid-way may leave a cluster behind: stop those under RUN_DIR only.
  for pid_file in $(find "$RUN_DIR" -name postmaster.pid 2>/dev/null); do
    pid=$(head -n 1 "$pid_file" 2>/dev/null)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

OUT="$RUN_DIR/bun-test.out"
"$BUN" test --timeout 300000 "$@" 2>&1 | tee "$OUT"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^ *[0-9]+ pass$' "$OUT" | tail -n 1 | grep -Eo '[0-9]+' || true)
failed=$(grep -Eo '^ *[0-9]+ fail$' "$OUT" | tail -n 1 | grep -Eo '[0-9]+' || true)
passed=${passed:-0}
failed=${failed:-0}
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # bun itself failed (crash, unhandled error outside a test): count it.
  failed=1
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "no test ran" >&2
  failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
