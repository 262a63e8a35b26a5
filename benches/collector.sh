#!/usr/bin/env bash
# Collector ingest throughput for benches/README.md, beside Mosquitto's own delivery rate for
# the same payloads to mosquitto_sub, in the same run: the `demo` city's envelopes (fast
# mode) published with mosquitto_pub (one process per sensor, in parallel) to a local
# Mosquitto, then (a) received by mosquitto_sub, (b) ingested by footfall-collector into a
# local ClickHouse 18.16, timed from the first publish to the last message (a) or the last
# sighting committed (b, read from the collector's metrics).
# Usage: bash benches/collector.sh [PRESET [BATCH_AGE_SECS [PEOPLE]]]   (default demo, 10: the
# agent's default batch age; a longer age makes fuller envelopes, up to 500 sightings; PEOPLE
# scales the preset's population, for a longer, sustained run)
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/local.sh
PRESET=${1:-demo}
AGE=${2:-10}
PEOPLE=${3:-}
cargo build --release --locked -q -p simulator -p collector --bins
BIN=target/release
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

printf 'preset = "%s"\n[output]\nmode = "envelopes"\nbatch_max_age_secs = %s\n' "$PRESET" "$AGE" \
  > "$W/scenario.toml"
[ -z "$PEOPLE" ] || printf '[population]\npeople = %s\n' "$PEOPLE" >> "$W/scenario.toml"
"$BIN/footfall-sim" generate --config "$W/scenario.toml" --seed 1 --quiet --out "$W/fast" >/dev/null
messages=$(cat "$W"/fast/envelopes/*.jsonl | wc -l)
sightings=$(python3 -c "import json; print(json.load(open('$W/fast/truth/summary.json'))['sightings'])")
bytes=$(cat "$W"/fast/envelopes/*.jsonl | wc -c)

mport=$(free_port)
start_mosquitto "$W/broker" "$mport"
pids+=("$MOSQUITTO_PID")

# (a) Mosquitto to mosquitto_sub.
mosquitto_sub -h 127.0.0.1 -p "$mport" -q 1 -t 'footfall/v1/+/+/sightings' -C "$messages" > /dev/null &
sub=$!
sleep 0.5
t0=$(date +%s.%N)
publish_city "$W/fast" "$mport"
wait "$sub"
t_sub=$(python3 -c "print($(date +%s.%N) - $t0)")

# (b) The collector into ClickHouse.
hport=$(free_port); tport=$(free_port)
start_clickhouse "$W/ch" "$hport" "$tport"
pids+=("$CLICKHOUSE_PID")
metrics=$(free_port)
cat > "$W/collector.toml" <<CONF
version = 1
[clickhouse]
url = "http://127.0.0.1:$hport"
[mqtt]
url = "mqtt://127.0.0.1:$mport"
client_id = "bench-collector"
[ingest]
max_age_days = 3650
[metrics]
listen = "127.0.0.1:$metrics"
CONF
"$BIN/footfall-collector" --log error import --config "$W/collector.toml" sensors "$W/fast/inventory/sensors.csv" >/dev/null
"$BIN/footfall-collector" --log error run --config "$W/collector.toml" & pids+=($!)
wait_subscribed "$metrics"
t0=$(date +%s.%N)
publish_city "$W/fast" "$mport"
until [ "$(rows_written "$metrics" sightings)" = "$sightings" ]; do sleep 0.05; done
t_col=$(python3 -c "print($(date +%s.%N) - $t0)")
stored=$(clickhouse-client --port "$tport" -q 'SELECT count() FROM footfall.sightings FINAL')

python3 - <<PY
m, s, b = $messages, $sightings, $bytes
ts, tc = $t_sub, $t_col
print(f"input: {s:,} sightings in {m:,} envelopes ({b/2**20:.0f} MiB), preset $PRESET, batch age $AGE s, people ${PEOPLE:-as preset}")
print(f"mosquitto_pub -> Mosquitto -> mosquitto_sub: {ts:.2f} s = {s/ts:,.0f} sightings/s ({m/ts:,.0f} msgs/s)")
print(f"mosquitto_pub -> Mosquitto -> collector -> ClickHouse: {tc:.2f} s = {s/tc:,.0f} sightings/s ({m/tc:,.0f} msgs/s)")
print(f"ratio to the broker's own delivery: {ts/tc:.2f}; rows in ClickHouse (FINAL): $stored")
PY
