#!/usr/bin/env bash
# The CPU cost of `shmtop watch`, as the README states it: a release build watches a 512 MiB
# cache at 10 Hz in a 160×48 tmux window while 4 writers run at 50 000 operations per second each,
# and /usr/bin/time measures the watcher over a timed run.
#
#   scripts/watch-cost.sh [SECONDS] [RUNS]      (defaults: 30 s, 3 runs)
#
# Prints user and system seconds and the share of one core per run. Meaningful only on an
# otherwise quiet machine (check /proc/loadavg first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-30}
runs=${2:-3}
for tool in tmux /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "watch-cost: needs $tool" >&2; exit 1; }
done

swift build -c release --product shmtop >/dev/null
bin=$(swift build -c release --show-bin-path)/shmtop
cache=$(mktemp -u /dev/shm/watch-cost-XXXXXX.shm)
timing=$(mktemp)
socket=watch-cost-$$
stop_load() {
  if [ -n "${load:-}" ]; then
    kill -INT "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    load=
  fi
}
cleanup() {
  rm -f "$cache" "$timing"
  tmux -L "$socket" kill-server 2>/dev/null || true
  stop_load
}
trap cleanup EXIT

for run in $(seq "$runs"); do
  rm -f "$cache"
  "$bin" create "$cache" >/dev/null
  "$bin" load "$cache" --writers 4 --rate 50000 --seconds $((seconds + 15)) >/dev/null 2>&1 &
  load=$!
  sleep 3    # the writers are running before the watcher attaches
  tmux -L "$socket" -f /dev/null new-session -d -x 160 -y 48 \
    "$(printf '/usr/bin/time -f %q -o %q %q watch %q --seconds %q' '%U %S %e' "$timing" "$bin" "$cache" "$seconds")"
  while tmux -L "$socket" has-session 2>/dev/null; do sleep 1; done
  stop_load
  # The last line: GNU time puts "Command exited with non-zero status N" before it on a failure.
  read -r user system wall < <(tail -n 1 "$timing")
  awk -v run="$run" -v u="$user" -v s="$system" -v w="$wall" \
    'BEGIN { printf "run %d: user %.2f s  sys %.2f s  wall %.1f s  = %.2f %% of one core\n", run, u, s, w, (u + s) / w * 100 }'
done
