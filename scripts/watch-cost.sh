#!/usr/bin/env bash
# The CPU cost of `shmtop watch`, as the README states it: a release build at 10 Hz in a 160×48
# tmux window, its CPU read from /proc/PID/stat (utime + stime) over a timed run, on
#
#   load:  a 512 MiB cache with 4 writers at 50 000 operations per second each (the demo's load);
#          the panel's "figures N s old" (owners included) is sampled every second and its
#          largest value printed, with the refresh period it is to be compared with;
#   idle:  an idle 16 GiB cache (sparse; `shmtop create`), which a refresh cannot read whole
#          within the budget: the panel's whole-cache rate is printed too.
#
#   scripts/watch-cost.sh [SECONDS] [RUNS] [CASES]   (defaults: 25 s, 1 run, "load idle")
#
# SHMTOP=path/to/shmtop measures that binary instead of this checkout's release build (to
# alternate runs of two builds on a machine whose load drifts).
#
# Meaningful only on an otherwise quiet machine (check /proc/loadavg first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-25}
runs=${2:-1}
cases=${3:-load idle}
command -v tmux >/dev/null || { echo "watch-cost: needs tmux" >&2; exit 1; }

if [ -n "${SHMTOP:-}" ]; then
  bin=$SHMTOP
else
  swift build -c release --product shmtop >/dev/null
  bin=$(swift build -c release --show-bin-path)/shmtop
fi
cache=$(mktemp -u /dev/shm/watch-cost-XXXXXX.shm)
socket=watch-cost-$$
ticks=$(getconf CLK_TCK)
stop_load() {
  if [ -n "${load:-}" ]; then
    kill -INT "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    load=
  fi
}
cleanup() {
  rm -f "$cache"
  tmux -L "$socket" kill-server 2>/dev/null || true
  stop_load
}
trap cleanup EXIT

# utime + stime of process $1, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

for kind in $cases; do
  for run in $(seq "$runs"); do
    rm -f "$cache"
    if [ "$kind" = load ]; then
      "$bin" create "$cache" >/dev/null
      "$bin" load "$cache" --writers 4 --rate 50000 --seconds $((seconds + 20)) >/dev/null 2>&1 &
      load=$!
      sleep 3    # the writers are running before the watcher attaches
    else
      "$bin" create "$cache" --capacity 16GiB >/dev/null
    fi
    tmux -L "$socket" -f /dev/null new-session -d -x 160 -y 48 -e LANG=C.UTF-8 "$bin watch $cache"
    sleep 1
    pid=$(tmux -L "$socket" list-panes -F '#{pane_pid}')
    sleep 4      # attached, first full read done
    start=$(cpu_ticks "$pid"); began=$(date +%s.%N)
    oldest=0; heading=
    for _ in $(seq "$seconds"); do
      sleep 1
      heading=$(tmux -L "$socket" capture-pane -p | grep -o 'Memory · read [^│]*old' | head -1 || true)
      age=$(sed -n 's/.*figures \([0-9.]*\) s old.*/\1/p' <<<"$heading")
      oldest=$(awk -v a="${age:-0}" -v o="$oldest" 'BEGIN { print (a > o) ? a : o }')
    done
    end=$(cpu_ticks "$pid"); ended=$(date +%s.%N)
    rss=$(awk '/^RssAnon/ { a = $2 } /^RssShmem/ { s = $2 } END { printf "%d MiB private + %d MiB shared", a / 1024, s / 1024 }' "/proc/$pid/status")
    tmux -L "$socket" send-keys q
    sleep 1
    tmux -L "$socket" kill-server 2>/dev/null || true
    stop_load
    awk -v kind="$kind" -v run="$run" -v t="$((end - start))" -v hz="$ticks" -v b="$began" -v e="$ended" -v old="$oldest" \
        -v head="$heading" -v rss="$rss" \
      'BEGIN { w = e - b; printf "%s run %d: %.2f s of CPU in %.1f s = %.2f %% of one core; figures at most %.1f s old (refresh 0.1 s); last heading \"%s\"; resident %s\n", kind, run, t / hz, w, t / hz / w * 100, old, head, rss }'
  done
done
