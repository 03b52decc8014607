#!/usr/bin/env bash
# Throughput of small training jobs on one worker and on two: JOBS (default 20) mask jobs (three
# photos, one epoch, dlib) queued through a real server (`serve --no-worker`) over HTTP and run by
# `fuselab worker` processes that share its data directory (SQLite and the artifact folder).
# Prints the wall time and jobs per minute of each. Needs `cargo build --release -p fuselab …`
# and `fuselab models fetch` (FUSELAB_DATA_DIR, default ~/.cache/fuselab/data).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
BIN="$TARGET_DIR/release/fuselab"
MODELS="${FUSELAB_DATA_DIR:-$XDG_CACHE_HOME/fuselab/data}/models"
JOBS="${JOBS:-20}"
PHOTOS=(obama.jpg obama2.jpg obama3.jpg)
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

run() {
  local workers=$1 data="$WORK/data-$1"
  mkdir -p "$data"
  ln -s "$MODELS" "$data/models"
  "$BIN" --data-dir "$data" serve --auth off --addr 127.0.0.1:0 --no-worker >"$WORK/serve-$workers.out" 2>/dev/null &
  PIDS+=($!)
  local url=""
  for _ in $(seq 100); do
    url="$(sed -n 's/^fuselab listening on //p' "$WORK/serve-$workers.out")"
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "the server did not start" >&2; exit 1; }
  for w in $(seq "$workers"); do
    RUST_LOG=warn "$BIN" --data-dir "$data" worker --poll-ms 100 >/dev/null &
    PIDS+=($!)
  done
  local form=()
  for photo in "${PHOTOS[@]}"; do form+=(-F "photo=@$MODELS/photos/$photo"); done
  local start queued=0 status
  start=$(date +%s.%N)
  while [ "$queued" -lt "$JOBS" ]; do
    # The server holds at most 8 unfinished mask jobs (429 beyond): queue as they drain.
    status=$(curl -s -o /dev/null -w '%{http_code}' "${form[@]}" -F epochs=1 -F models=dlib \
      -F seed="$queued" -F keep=true "$url/api/masks")
    case "$status" in
      202) queued=$((queued + 1)) ;;
      429) sleep 0.2 ;;
      *) echo "POST /api/masks answered $status" >&2; exit 1 ;;
    esac
  done
  local done=0 failed
  while [ "$done" -lt "$JOBS" ]; do
    sleep 0.2
    done=$("$BIN" --data-dir "$data" jobs list --kind mask.train --status done --limit 1000 --json | wc -l)
    failed=$("$BIN" --data-dir "$data" jobs list --kind mask.train --status failed --limit 1000 --json | wc -l)
    [ "$failed" -eq 0 ] || { echo "$failed mask jobs failed" >&2; exit 1; }
  done
  local end
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$JOBS" -v w="$workers" \
    'BEGIN { t = e - s; printf "%d worker(s): %d mask jobs in %.1f s, %.1f jobs/min\n", w, n, t, 60 * n / t }'
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

run 1
run 2
