#!/usr/bin/env bash
# Fuzzes the header parser and the inspector's statistics with libFuzzer (Sources/shm-fuzz).
#
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]     default 600 s
#
# Builds `shm-fuzz` with `-sanitize=fuzzer,address` into .build-fuzz, runs it for SECONDS on one
# core with the corpus in .build-fuzz/corpus (kept between runs), and prints libFuzzer's final
# figures: executions (`stat::number_of_executed_units`) and the crash count. A crash input is
# written to .build-fuzz/crash-*; replay it with a plain build: `swift run shm-fuzz FILE`.
# Run it niced on a shared machine: `nice -n 19 scripts/fuzz.sh 600`; add `-len_control=0` to try long
# inputs (up to 4096 bytes: 511 words) from the start instead of growing them slowly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-600}
shift || true
scratch=$PWD/.build-fuzz
swift build --scratch-path "$scratch" -c release --product shm-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DSHM_FUZZ </dev/null
mkdir -p "$scratch/corpus" "$scratch/artifacts"
log=$scratch/fuzz-$(date +%Y%m%d-%H%M%S).log
set +e
"$scratch/release/shm-fuzz" "$scratch/corpus" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$scratch/artifacts/" "$@" 2>&1 | tee "$log" | grep -E '^#[0-9]+.*(pulse|DONE)|stat::|ERROR|invariant|crash'
status=${PIPESTATUS[0]}
set -e
crashes=$(ls "$scratch/artifacts" | grep -c -E '^(crash|leak|timeout|oom)-' || true)
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "fuzz: seconds=$seconds executions=${executions:-?} crashes=$crashes status=$status log=$log"
[ "$status" -eq 0 ] && [ "$crashes" -eq 0 ]
