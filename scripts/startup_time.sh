#!/usr/bin/env bash
# Start-up time of the real `audiorec serve` on paper-scale demo data (56,000 tracks,
# 17,000 users, four backends: musicnn 200-d, mert 1024-d, mfcc 104-d, noise 64-d):
# seconds until it listens (`/health` answers), until each backend's KNN index is ready
# and until `/ready` answers 200, for
#   - a first start: an empty database (the catalog and plays are imported into it), no
#     cached import of the plays and no cached HNSW graphs;
#   - a start without graphs: the database and the plays' import from the first start,
#     no cached HNSW graphs (what new index parameters or new embeddings cost);
#   - a warm start right after: the same database, import and graphs cached.
# Demo training is off (`--demo-training false`): it starts only after the start-up and
# is not part of it.
#
#   scripts/startup_time.sh [DATA_DIR]     # default /tmp/paper, generated if missing
#
# Uses target/release/audiorec (AUDIOREC_BIN overrides); extra serve flags can be given
# in AUDIOREC_SERVE_FLAGS.
set -euo pipefail
data="${1:-/tmp/paper}"
bin="${AUDIOREC_BIN:-target/release/audiorec}"
[[ -x "$bin" ]] || cargo build --release --bin audiorec
[[ -d "$data" ]] || "$bin" demo-data --scale paper --out "$data"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"

# One start: prints when it listened, when each backend became ready, when /ready said 200.
measure() {
  local label="$1" start now listening="" pid seen=""
  start="$(date +%s.%N)"
  # shellcheck disable=SC2086
  DATABASE_URL="sqlite://$work/db.sqlite" "$bin" serve --data "$data" --bind "127.0.0.1:$port" \
    --demo-training false ${AUDIOREC_SERVE_FLAGS:-} >"$work/$label.log" 2>&1 &
  pid=$!
  while true; do
    kill -0 "$pid" 2>/dev/null || { echo "serve exited:" >&2; cat "$work/$label.log" >&2; exit 1; }
    now="$(date +%s.%N)"
    elapsed="$(python3 -c "print(f'{$now - $start:.1f}')")"
    if [[ -z "$listening" ]]; then
      if curl -fs "$base/health" >/dev/null 2>&1; then
        listening="$elapsed"
        echo "$label: listening after $listening s"
      else
        sleep 0.1
        continue
      fi
    fi
    body="$(curl -s -w '\n%{http_code}' "$base/ready")"
    code="$(tail -n1 <<<"$body")"
    ready_now="$(head -n -1 <<<"$body" | python3 -c 'import json, sys; b = json.load(sys.stdin); print(" ".join(k for k, v in sorted(b["backends"].items()) if v == "ready"))')"
    for b in $ready_now; do
      if [[ " $seen " != *" $b "* ]]; then
        seen="$seen $b"
        echo "$label:   knn/$b ready after $elapsed s"
      fi
    done
    if [[ "$code" == 200 ]]; then
      echo "$label: /ready 200 after $elapsed s"
      break
    fi
    sleep 0.25
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

rm -rf "$data/.audiorec/index" "$data/.audiorec/plays.bin"
echo "machine: $(nproc) cores; $(uptime | sed 's/.*load/load/')"
measure first
rm -rf "$data/.audiorec/index"
measure graphs
measure warm
for run in first graphs; do
  grep -h "KNN index ready\|start-up loading done\|importing\|listening" "$work/$run.log" |
    sed 's/\x1b\[[0-9;]*m//g; s/^\([^ ]*\) *INFO [^:]*: /\1 /' | sed "s/^/$run log: /" | cut -c1-200
done
