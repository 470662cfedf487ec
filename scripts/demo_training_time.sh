#!/usr/bin/env bash
# What a first `audiorec serve` on fresh demo data does, timed: seconds until it listens,
# until `/ready`, and until the demo's Shallow Net and BERT4Rec on musicnn serve
# (trained in the background with the default demo profile).
#
#   scripts/demo_training_time.sh [SCALE]    # tiny, small (default) or paper
#
# Uses target/release/audiorec (AUDIOREC_BIN overrides).
set -euo pipefail
scale="${1:-small}"
bin="${AUDIOREC_BIN:-target/release/audiorec}"
[[ -x "$bin" ]] || cargo build --release --bin audiorec
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" demo-data --scale "$scale" --out "$work/data" >/dev/null
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
echo "machine: $(nproc) cores; $(uptime | sed 's/.*load/load/')"
start="$(date +%s.%N)"
DATABASE_URL="sqlite://$work/db.sqlite" "$bin" serve --data "$work/data" --bind "127.0.0.1:$port" \
  >"$work/serve.log" 2>&1 &
pid=$!
since() { python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')"; }
until curl -fs "$base/health" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
echo "listening after $(since) s"
until curl -fs "$base/ready" >/dev/null 2>&1; do sleep 0.25; done
echo "/ready 200 after $(since) s"
seen=""
while [[ "$seen" != *shallow*bert4rec* && "$seen" != *bert4rec*shallow* ]]; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  for m in $(curl -s "$base/v1/models" | python3 -c 'import json, sys; print(" ".join(m["model"] for m in json.load(sys.stdin) if m["backend"] == "musicnn" and m["model"] != "knn" and m["state"] == "ready"))'); do
    if [[ " $seen " != *" $m "* ]]; then
      seen="$seen $m"
      echo "$m/musicnn serving after $(since) s"
    fi
  done
  sleep 1
done
grep -h "epoch done" "$work/serve.log" | sed 's/.*model=\([^ ]*\) epoch=\([0-9]*\).* seconds=\([0-9.]*\).*/  \1 epoch \2: \3 s/'
