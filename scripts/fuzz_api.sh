#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis (`--checks all`) against the real server: the
# debug binary on a fresh embedded SQLite with the tiny demo data, a seeded user with
# listens (the id the document's examples use), on a free port. Fails on any failure.
#
#   scripts/fuzz_api.sh                      # schemathesis from PATH or $SCHEMATHESIS
#   FUZZ_EXAMPLES=200 FUZZ_SEED=7 scripts/fuzz_api.sh
#
# Needs: cargo, python3, schemathesis (pip install schemathesis, in a venv outside the
# repository), curl.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS="${SCHEMATHESIS:-schemathesis}"
EXAMPLES="${FUZZ_EXAMPLES:-100}"
SEED="${FUZZ_SEED:-20261130}"
API_KEY="${FUZZ_API_KEY:-}"

cargo build --locked --quiet --bin audiorec
bin="${CARGO_TARGET_DIR:-target}/debug/audiorec"

work="$(mktemp -d)"
server=""
cleanup() {
  if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" demo-data --scale tiny --out "$work/data" >/dev/null
# The document's examples name two Music4All track ids: give them to the first two
# catalog tracks (still sorted: demo ids do not start with "00"), so requests built from
# the examples reach real tracks instead of 404s.
for pair in "2 0009fFIM1eYThaPg" "3 00BmGzbCUfwNHx0b"; do
  set -- $pair
  old="$(sed -n "${1}p" "$work/data/trackid_sorted.csv" | cut -d, -f2)"
  sed -i "s/$old/$2/g" "$work/data/trackid_sorted.csv" "$work/data/userid_trackid_timestamp.tsv"
done
tail -n +2 "$work/data/trackid_sorted.csv" | cut -d, -f2 | LC_ALL=C sort -c
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
key_args=()
auth=()
if [[ -n "$API_KEY" ]]; then
  key_args=(--api-key "$API_KEY")
  auth=(-H "Authorization: Bearer $API_KEY")
fi
# --experiment-budget 1: the fuzzer may start experiment grids, but only ones estimated at
# about a second of computing each (a tiny KNN grid), never the minutes-long training
# grids a random valid configuration could ask for; larger ones are answered 422.
DATABASE_URL="sqlite://$work/db.sqlite" "$bin" serve --data "$work/data" --bind "127.0.0.1:$port" \
  --index exact --demo-training false --experiment-budget 1 "${key_args[@]}" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -fs "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.5
done
curl -fs "$base/ready" >/dev/null || { echo "the server did not become ready" >&2; cat "$work/server.log"; exit 1; }

# Seed the user the document's examples name, with a few listens of real tracks.
tracks="$(sed -n '2,6p' "$work/data/trackid_sorted.csv" | cut -d, -f2)"
listens="$(python3 -c 'import json, sys; print(json.dumps({"listens": [{"track_id": t, "timestamp": 1700000000 + i} for i, t in enumerate(sys.argv[1:])]}))' $tracks)"
curl -fs "${auth[@]}" -H 'content-type: application/json' -d '{"user_id": "listener-42"}' "$base/v1/users" >/dev/null
curl -fs "${auth[@]}" -H 'content-type: application/json' -d "$listens" "$base/v1/users/listener-42/listens" >/dev/null

status=0
"$SCHEMATHESIS" --config-file scripts/schemathesis.toml run "$base/openapi.json" --checks all --exclude-checks ensure_resource_availability --seed "$SEED" --max-examples "$EXAMPLES" \
  --workers 1 --no-color "${auth[@]}" --report junit --report-dir "$work/report" || status=$?
if [[ $status -ne 0 ]]; then
  echo "schemathesis found failures (server log: last lines below)" >&2
  tail -n 40 "$work/server.log" >&2
fi
kill -0 "$server" 2>/dev/null || { echo "the server died during the run" >&2; status=1; }
exit $status
