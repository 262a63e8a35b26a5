#!/usr/bin/env bash
# Calibration of the attribution on ground truth (issue 5): SEEDS seeded cities, each through
# the real pipeline in fast envelope mode (mosquitto_pub -> Mosquitto -> footfall-collector
# -> ClickHouse 18.16 -> footfall-attribution report), compared with the simulator's truth:
# does the 95 % interval of the absolute lift cover the true device-level lift
# (truth/summary.json: campaigns[].devices_by_window[primary].target_lift_pp), and what are
# the mean error and the mean interval width. One line per seed in $OUT/seeds.csv, the summary
# on stdout and in $OUT/summary.txt. Seeds already in $OUT/seeds.csv are not run again, so an
# interrupted run resumes. With CHECK=1 the exit status says whether the targets hold
# (coverage >= 90 %, |mean error| < 0.05 pp). PROFILE picks the cargo profile of the binaries
# (default release; `make test` uses ci). PROGRESS=N prints a line every N seeds instead of
# every seed's row. LANES seeds run at a time (default 2).
# Usage: [CHECK=1] [PROFILE=P] [PROGRESS=N] [LANES=L] bash benches/calibration.sh [SEEDS [FIRST_SEED [OUT]]]
# (default 50, 1, target/calibration)
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/local.sh
SEEDS=${1:-50}
FIRST=${2:-1}
OUT=${3:-target/calibration}
PROFILE=${PROFILE:-release}
PROGRESS=${PROGRESS:-1}
LANES=${LANES:-2}
cargo build --profile "$PROFILE" --locked -q -p simulator -p collector -p attribution --bins
BIN=$PWD/target/$PROFILE
mkdir -p "$OUT"
W=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# The demo city, two weeks (a week before the flight, the flight, a day of follow-up), with
# more people and more globally addressed phones than the demo: more linkable devices per
# arm, so that each run's interval is narrow enough for the mean error to be measured.
cat > "$W/scenario.toml" <<'TOML'
preset = "demo"
[city]
days = 15
[population]
people = 60000
[devices]
shares = { ios = 0.2, android-random = 0.1, android-global = 0.6, laptop = 0.1 }
[output]
mode = "envelopes"
# Fuller envelopes than the agents' default 10 s: the same sightings in fewer messages.
batch_max_age_secs = 60
TOML

hport=$(free_port); tport=$(free_port)
start_clickhouse "$W/ch" "$hport" "$tport"
pids+=("$CLICKHOUSE_PID")

[ -s "$OUT/seeds.csv" ] || echo "seed,n_exposed,n_control,truth_n_exposed,truth_n_control,target_pp,truth_observed_pp,lift_pp,newcombe_lo_pp,newcombe_hi_pp,bootstrap_lo_pp,bootstrap_hi_pp,covered,bootstrap_covered,status,seconds" \
  > "$OUT/seeds.csv"

# run_seed SEED: one city through the pipeline, its row appended to seeds.csv. Runs in a
# subshell; LANES of them at a time share ClickHouse (a database each), each with its own
# broker (every city has the same topics).
run_seed() {
  local seed=$1 t0 city db mport metrics collector want campaign row
  t0=$(date +%s.%N)
  city="$W/city-$seed"
  db="cal_$seed"
  metrics=$(free_port)
  "$BIN/footfall-sim" generate --config "$W/scenario.toml" --seed "$seed" --quiet --out "$city" >/dev/null
  mport=$(free_port)
  start_mosquitto "$city/broker" "$mport"
  cat > "$city/collector.toml" <<CONF
version = 1
[clickhouse]
url = "http://127.0.0.1:$hport"
database = "$db"
[mqtt]
url = "mqtt://127.0.0.1:$mport"
client_id = "calibration-$seed"
[ingest]
max_age_days = 3650
[visits]
# The sensors are published in parallel, days apart in event time.
horizon_hours = 1000
[metrics]
listen = "127.0.0.1:$metrics"
CONF
  for kind in sites:inventory/sites.csv sensors:inventory/sensors.csv ad-plays:ad_plays.csv \
      campaigns:campaigns.jsonl receipts:receipts.csv links:links.csv; do
    "$BIN/footfall-collector" --log error import --config "$city/collector.toml" "${kind%%:*}" \
      "$city/${kind#*:}" >/dev/null
  done
  "$BIN/footfall-collector" --log error run --config "$city/collector.toml" &
  collector=$!
  trap 'kill "$collector" "$MOSQUITTO_PID" 2>/dev/null' EXIT
  wait_subscribed "$metrics"
  publish_city "$city" "$mport"
  want=$(python3 -c "import json; print(json.load(open('$city/truth/summary.json'))['sightings'])")
  until [ "$(rows_written "$metrics" sightings)" -ge "$want" ] 2>/dev/null; do
    sleep 0.1
  done
  # A clean drain writes every stay the stream stage holds; anything else fails the seed.
  kill -TERM "$collector"
  wait "$collector"
  kill "$MOSQUITTO_PID"
  trap - EXIT
  campaign=$(python3 -c "import json; print(json.loads(open('$city/campaigns.jsonl').readline())['id'])")
  "$BIN/footfall-attribution" report --campaign "$campaign" --out "$city/report" \
    --clickhouse-url "http://127.0.0.1:$hport" --database "$db" --seed "$seed" >/dev/null
  row=$(python3 - "$city" "$seed" "$t0" "$(date +%s.%N)" <<'PY'
import json, sys
city, seed, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
r = json.load(open(f"{city}/report/report.json"))
t = json.load(open(f"{city}/truth/summary.json"))
w = next(x for x in r["windows"] if x["primary"])
c = {x["id"]: x for x in t["campaigns"]}[r["campaign"]["id"]]
tw = next(x for x in c["devices_by_window"] if x["window_days"] == w["window_days"])
cmp_ = w["comparison"]
lo, hi = 100 * cmp_["newcombe"]["lo"], 100 * cmp_["newcombe"]["hi"]
b = w["bootstrap"]["interval"] if w["bootstrap"] else {"lo": float("nan"), "hi": float("nan")}
blo, bhi = 100 * b["lo"], 100 * b["hi"]
target = tw["target_lift_pp"]
print(f"{seed},{cmp_['exposed']['devices']},{cmp_['control']['devices']},{tw['n_exposed']},{tw['n_control']},"
      f"{target:.6f},{tw['observed_lift_pp']:.6f},{100 * cmp_['difference']:.6f},{lo:.6f},{hi:.6f},{blo:.6f},{bhi:.6f},"
      f"{int(lo <= target <= hi)},{int(blo <= target <= bhi)},{r['status']},{t1 - t0:.1f}")
PY
)
  echo "$row" >> "$OUT/seeds.csv"
  [ "$PROGRESS" = 1 ] && echo "$row"
  clickhouse-client --port "$tport" -q "DROP DATABASE $db"
  rm -rf "$city"
}

# reap N: waits until fewer than N seeds run; a failed seed stops the calibration.
lanes=()
reap() {
  local p alive
  while :; do
    alive=()
    for p in "${lanes[@]}"; do
      if kill -0 "$p" 2>/dev/null; then
        alive+=("$p")
      elif ! wait "$p"; then
        echo "calibration: a seed failed" >&2
        exit 1
      fi
    done
    lanes=("${alive[@]}")
    [ "${#lanes[@]}" -lt "$1" ] && return
    sleep 0.2
  done
}

started=$(date +%s)
done_before=$(($(wc -l < "$OUT/seeds.csv") - 1))
reported=0
for seed in $(seq "$FIRST" $((FIRST + SEEDS - 1))); do
  if cut -d, -f1 "$OUT/seeds.csv" | grep -qx "$seed"; then continue; fi
  reap "$LANES"
  run_seed "$seed" &
  lanes+=($!)
  n=$(($(wc -l < "$OUT/seeds.csv") - 1 - done_before))
  if [ "$PROGRESS" != 1 ] && [ $((n / PROGRESS)) -gt "$reported" ]; then
    reported=$((n / PROGRESS))
    echo "calibration: $n of $SEEDS seeds, $(( $(date +%s) - started )) s"
  fi
done
reap 1

python3 - "$OUT/seeds.csv" "$FIRST" "$SEEDS" "${CHECK:-0}" <<'PY' | tee "$OUT/summary.txt"
import csv, math, sys
first, count, check = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
rows = [r for r in csv.DictReader(open(sys.argv[1])) if first <= int(r["seed"]) < first + count]
n = len(rows)
err = [float(r["lift_pp"]) - float(r["target_pp"]) for r in rows]
fid = [float(r["lift_pp"]) - float(r["truth_observed_pp"]) for r in rows]
mean = sum(err) / n
sd = math.sqrt(sum((e - mean) ** 2 for e in err) / (n - 1)) if n > 1 else float("nan")
width = sum(float(r["newcombe_hi_pp"]) - float(r["newcombe_lo_pp"]) for r in rows) / n
print(f"seeds: {n}; exposed devices per run: {sum(int(r['n_exposed']) for r in rows) / n:.0f}, control {sum(int(r['n_control']) for r in rows) / n:.0f}")
print(f"coverage of the true device-level lift: Newcombe {sum(int(r['covered']) for r in rows) / n:.1%}, board-day bootstrap {sum(int(r['bootstrap_covered']) for r in rows) / n:.1%}")
print(f"mean error (lift - true lift): {mean:+.3f} pp (sd {sd:.3f}, se of the mean {sd / math.sqrt(n):.3f}); mean |error| {sum(abs(e) for e in err) / n:.3f} pp")
print(f"mean interval width (Newcombe): {width:.3f} pp; mean true lift {sum(float(r['target_pp']) for r in rows) / n:+.3f} pp")
print(f"pipeline vs the truth's own sensed-device comparison (observed): mean |difference| {sum(abs(f) for f in fid) / n:.3f} pp")
print(f"reports passing the gates: {sum(r['status'] == 'ok' for r in rows)} of {n}; mean run {sum(float(r['seconds']) for r in rows) / n:.0f} s")
coverage = sum(int(r["covered"]) for r in rows) / n
if check and not (coverage >= 0.9 and abs(mean) < 0.05):
    sys.exit(f"calibration: coverage {coverage:.1%} (target >= 90 %), mean error {mean:+.3f} pp (target within 0.05)")
PY
