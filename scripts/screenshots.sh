#!/usr/bin/env bash
# Makes screenshots/ from a real `shmtop demo` run: the main view, the drill-down, the help
# overlay and the owner table, each as text (tmux capture-pane: .txt plain, .ansi with colours) and as PNG rendered
# from the ANSI capture with aha (ANSI → HTML) and wkhtmltoimage (HTML → PNG), both Debian packages.
#
# Usage: scripts/screenshots.sh   (from the repository; installs aha, wkhtmltopdf and a font with apt;
# builds `shmtop` optimised, as the README runs the demo)
set -euo pipefail

cd "$(dirname "$0")/.."
out=screenshots
socket="shmtop-screenshots-$$"
width=120
height=38

if ! command -v aha >/dev/null || ! command -v wkhtmltoimage >/dev/null || ! command -v tmux >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aha wkhtmltopdf fonts-dejavu-core tmux >/dev/null
fi

swift build -c release --scratch-path .build-tui --product shmtop >/dev/null
shmtop="$(swift build -c release --scratch-path .build-tui --show-bin-path)/shmtop"
mkdir -p "$out"

config="$(mktemp)"
trap 'tmux -L "$socket" kill-server 2>/dev/null || true; rm -f "$config"' EXIT
echo 'set -g default-terminal "tmux-256color"' >"$config"

# Polls the screen until it matches a pattern (at most 30 s).
wait_for() {
    for _ in $(seq 300); do
        if tmux -L "$socket" capture-pane -p -t shots | grep -qE "$1"; then return 0; fi
        sleep 0.1
    done
    echo "screenshots: timed out waiting for /$1/" >&2
    tmux -L "$socket" capture-pane -p -t shots >&2
    return 1
}

# Saves the screen as NAME.txt, NAME.ansi and NAME.png.
capture() {
    local name="$1"
    tmux -L "$socket" capture-pane -p -t shots >"$out/$name.txt"
    tmux -L "$socket" capture-pane -p -e -t shots >"$out/$name.ansi"
    aha --black --title "shmtop $name" <"$out/$name.ansi" |
        sed 's|</head>|<style>body{margin:12px;background:#000} pre{font-family:"DejaVu Sans Mono",monospace;font-size:15px;line-height:1.2}</style></head>|' \
            >"$out/$name.html"
    wkhtmltoimage --quiet --width 1200 --quality 20 --enable-local-file-access "$out/$name.html" "$out/$name.png"
    rm "$out/$name.html"
    echo "screenshots: $out/$name.{txt,ansi,png}"
}

tmux -L "$socket" -f "$config" new-session -d -s shots -x "$width" -y "$height" \
    -e LANG=C.UTF-8 -e LC_ALL=C.UTF-8 "$shmtop" demo --writers 4
wait_for 'LIVE'
wait_for 'allocs/s +[1-9]'
sleep 4  # let the writers spread over the heatmap
capture main

# Open a block that holds allocations: the first fully drawn heatmap cell of the main capture
# (cell index × blocks per cell, from the legend), then its second allocation.
block="$(python3 - "$out/main.txt" <<'PY'
import re, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
per_cell = int(re.search(r"(\d+) blocks? per cell", lines[1]).group(1))
columns = lines[2].index("│") - 2
for row, line in enumerate(lines[2:-2]):
    cells = line[1:1 + columns]
    if "█" in cells:
        print((row * columns + cells.index("█")) * per_cell + per_cell // 2)
        break
PY
)"
tmux -L "$socket" send-keys -t shots / && tmux -L "$socket" send-keys -t shots -l "#${block:-5}"
tmux -L "$socket" send-keys -t shots Enter Enter
wait_for 'Allocations \('
tmux -L "$socket" send-keys -t shots Tab
sleep 0.5
capture drilldown

tmux -L "$socket" send-keys -t shots Escape
tmux -L "$socket" send-keys -t shots '?'
wait_for 'any key closes'
capture help

# The owner table (`o`): one row per writer, sorted by bytes.
tmux -L "$socket" send-keys -t shots Escape
tmux -L "$socket" send-keys -t shots o
wait_for 'bytes▼'
sleep 2  # a second of rates
capture owners

tmux -L "$socket" send-keys -t shots q
