#!/usr/bin/env bash
# The long soaks of docs/reliability.md (the test suite runs short versions of both).
#
#   scripts/soak.sh crash   [KILLS] [soak options...]           default 200 kills, 4 writers, ~300 ms apart
#   scripts/soak.sh signals [SECONDS] [PROCESSES]               default 10 s, 4 processes
#
# crash:   `shm-test-helper soak`: writers killed with SIGKILL one after another; after each kill the inspector
#          must find every word valid and attribute to the dead writer exactly what its journal held;
#          at the end leaked bytes = what the dead held. Prints the soak's summary line.
# signals: PROCESSES `shm-test-helper signals` processes on one cache at once, each interrupted by a
#          SIGALRM every 50 µs whose handler allocates, fills, verifies and frees while the main loop
#          does the same; then `shmtop snapshot --json` must show no invalid word and no allocation.
#
# Environment: SCRATCH (default .build-soak) and CONFIG (debug or release; default debug, where
# unspecialised code makes signal safety harder). Run it niced on a shared machine: nice -n 19.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scratch=${SCRATCH:-.build-soak}
config=${CONFIG:-debug}
mode=${1:-}
shift || true
build() { swift build --scratch-path "$scratch" -c "$config" --product "$1" </dev/null >&2; }
bin=$scratch/$config
work=$(mktemp -d "${TMPDIR:-/tmp}/shmtop-soak-XXXXXX")
trap 'rm -rf "$work"' EXIT

case "$mode" in
crash)
    kills=${1:-200}
    shift || true
    build shm-test-helper
    /usr/bin/time -f "soak-time: wall=%es user=%Us sys=%Ss" "$bin/shm-test-helper" soak "$work/soak.shm" --kills "$kills" "$@"
    ;;
signals)
    seconds=${1:-10}
    processes=${2:-4}
    build shm-test-helper
    build shm-test-helper
    "$bin/shmtop" create "$work/signals.shm" --min-size 32 --max-size 1KiB --capacity 8MiB >/dev/null
    pids=()
    for index in $(seq 1 "$processes"); do
        "$bin/shm-test-helper" signals "$work/signals.shm" "$seconds" >"$work/out-$index" 2>&1 &
        pids+=($!)
    done
    failed=0
    for index in $(seq 1 "$processes"); do
        # A deadlock would hang: give each process its time plus a minute, then call it a failure.
        if ! timeout $((seconds + 60)) tail --pid="${pids[$((index - 1))]}" -f /dev/null; then
            echo "signals: process $index did not finish (deadlock?)"; kill -9 "${pids[$((index - 1))]}" || true; failed=1
        fi
        wait "${pids[$((index - 1))]}" || { echo "signals: process $index failed: $(tail -5 "$work/out-$index")"; failed=1; }
        echo "signals: process $index: $(tail -1 "$work/out-$index")"
    done
    report=$("$bin/shmtop" snapshot --json "$work/signals.shm")
    invalid=$(sed -n 's/^ *"invalidWords" : \([0-9]*\).*/\1/p' <<<"$report")
    live=$(sed -n 's/^ *"liveAllocations" : \([0-9]*\).*/\1/p' <<<"$report")
    sum() { cat "$work"/out-* | sed -n "s/.*$1=\([0-9]*\).*/\1/p" | awk '{ s += $1 } END { print s + 0 }'; }
    total=$(sum handlerRuns)
    loops=$(sum loops)
    echo "signals: processes=$processes seconds=$seconds handlerRuns=$total loops=$loops invalidWords=$invalid liveAllocations=$live"
    [ "$failed" -eq 0 ] && [ "$invalid" = 0 ] && [ "$live" = 0 ]
    ;;
*)
    echo "usage: scripts/soak.sh crash [KILLS] [options] | signals [SECONDS] [PROCESSES]" >&2
    exit 2
    ;;
esac
