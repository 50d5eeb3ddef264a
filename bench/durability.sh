#!/usr/bin/env bash
# The long versions of test/durability.test.ts, run by hand (as root, like the mount tests):
#   hundreds of kill -9 rounds of the daemon under an fsyncing writer, and a long Postgres outage in the
#   middle of a writing workload. Prints "[crash] … N lost" and "[outage] …" lines; results go to
#   docs/benchmarks.md ("Durability, long runs").
#
#   bash bench/durability.sh                         # 200 rounds, 10-minute outage (~20 minutes)
#   CRASH_ROUNDS=50 OUTAGE_SECONDS=60 bash bench/durability.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CRASH_ROUNDS="${CRASH_ROUNDS:-200}"
export OUTAGE_SECONDS="${OUTAGE_SECONDS:-600}"
bash test/run.sh test/durability.test.ts 2>&1 | grep -E '^\[(crash|outage)\]|\((pass|fail)\)|passed'
