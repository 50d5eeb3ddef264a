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

passed=0
failed=0
# Runs `bun test ARGS` with output to $1 and adds its counts to passed/failed.
run_tests() {
  local out=$1
  shift
  "$BUN" test --timeout 300000 "$@" 2>&1 | tee "$out"
  local status=${PIPESTATUS[0]}
  local p f
  p=$(grep -Eo '^ *[0-9]+ pass$' "$out" | tail -n 1 | grep -Eo '[0-9]+' || true)
  f=$(grep -Eo '^ *[0-9]+ fail$' "$out" | tail -n 1 | grep -Eo '[0-9]+' || true)
  p=${p:-0}
  f=${f:-0}
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
    # bun itself failed (crash, unhandled error outside a test): count it.
    f=1
  fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    echo "no test ran" >&2
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
}

binary=""
if [ $# -eq 0 ]; then
  # A full run builds the release once (four binaries, archives, SHA256SUMS,
  # the formula): the packaging tests check it, and the mount tests run a second
  # time against the Linux binary for this machine, the one users install.
  echo "building the release (bun build/release.ts)"
  if "$BUN" build/release.ts --out "$RUN_DIR/release" 2>&1 | tee "$RUN_DIR/release.out" && [ "${PIPESTATUS[0]}" -eq 0 ]; then
    export PGFILES_RELEASE_DIR="$RUN_DIR/release"
    case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; *) arch=x64 ;; esac
    mkdir -p "$RUN_DIR/bin"
    tar -xzf "$RUN_DIR"/release/latest/download/pgfiles-*-linux-$arch.tar.gz -C "$RUN_DIR/bin" &&
      binary=$(ls "$RUN_DIR"/bin/pgfiles-*-linux-$arch/pgfiles)
  fi
  if [ -z "$binary" ]; then
    echo "the release build failed: the mount tests cannot run against the compiled binary" >&2
    failed=$((failed + 1))
  fi
fi

run_tests "$RUN_DIR/bun-test.out" "$@"
if [ -n "$binary" ]; then
  echo "the mount tests again, against the compiled binary $(basename "$(dirname "$binary")")/pgfiles"
  export PGFILES_TEST_BINARY="$binary"
  run_tests "$RUN_DIR/bun-test-binary.out" test/mount.test.ts
  unset PGFILES_TEST_BINARY
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
