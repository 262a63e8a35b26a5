#!/usr/bin/env bash
# Collector ingest throughput for benches/README.md, beside Mosquitto's own delivery rate for
# the same payloads to mosquitto_sub, in the same run: the `demo` city's envelopes (fast
# mode) published by `publish-city` (benches/src/bin: one MQTT client per sensor, in
# parallel, QoS 1, the envelopes encoded before the clock starts) to a local
# Mosquitto, then (a) received by mosquitto_sub alone, (b) ingested by footfall-collector
# into a local ClickHouse 18.16 while a second mosquitto_sub (b') receives them too, timed
# from the first publish to the last message (a, b') or the last sighting committed (b, read
# from the collector's metrics). Also the CPU each part used in (a) and (b).
# Usage: bash benches/collector.sh [PRESET [BATCH_AGE_SECS [PEOPLE]]]   (default demo, 10: the
# agent's default batch age; a longer age makes fuller envelopes, up to 500 sightings; PEOPLE
# scales the preset's population, for a longer, sustained run). BIN=DIR runs the binaries in
# DIR instead of building them (a baseline kept from another commit, for a same-run figure);
# ENCODING=binary publishes the envelopes in the wire's binary encoding.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/local.sh
PRESET=${1:-demo}
AGE=${2:-10}
PEOPLE=${3:-}
ENCODING=${ENCODING:-json}
cargo build --release --locked -q -p benches --bin publish-city
PUBLISH=target/release/publish-city
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -q -p simulator -p collector -p testkit --bins
  BIN=target/release
fi
LOCAL=$BIN/footfall-local
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
"$PUBLISH" prepare "$W/fast" "$W/msgs" "$ENCODING"
bytes=$(python3 -c "import os,sys; d=sys.argv[1]; print(sum(os.path.getsize(os.path.join(d,f)) for f in os.listdir(d)))" "$W/msgs")

start_servers "$W/broker" --mosquitto quiet
pids+=("$SERVERS_PID")
mport=$MOSQUITTO_PORT

# (a) Mosquitto to mosquitto_sub.
mosquitto_sub -h 127.0.0.1 -p "$mport" -q 1 -t 'footfall/v1/+/+/sightings' -C "$messages" > /dev/null &
sub=$!
sleep 0.5
cpu_a0="$(cpu_secs "$MOSQUITTO_PID") $(busy_secs)"
t0=$("$PUBLISH" send "$W/msgs" "$mport")
wait "$sub"
t_sub=$(python3 -c "print($(date +%s.%N) - $t0)")
cpu_a1="$(cpu_secs "$MOSQUITTO_PID") $(busy_secs)"

# (b) The collector into ClickHouse.
start_servers "$W/ch" --clickhouse
pids+=("$SERVERS_PID")
hport=$CLICKHOUSE_HTTP_PORT
tport=$CLICKHOUSE_TCP_PORT
metrics=$(free_port)
cat > "$W/collector.toml" <<CONF
version = 1
[clickhouse]
url = "http://127.0.0.1:$hport"
compression = "none"
[mqtt]
url = "mqtt://127.0.0.1:$mport"
client_id = "bench-collector"
[ingest]
max_age_days = 3650
[metrics]
listen = "127.0.0.1:$metrics"
CONF
"$BIN/footfall-collector" --log error import --config "$W/collector.toml" sensors "$W/fast/inventory/sensors.csv" >/dev/null
"$BIN/footfall-collector" --log error run --config "$W/collector.toml" & col=$!
pids+=("$col")
wait_subscribed "$metrics"
mosquitto_sub -h 127.0.0.1 -p "$mport" -q 1 -t 'footfall/v1/+/+/sightings' -C "$messages" \
  -i bench-sub-b > /dev/null &
sub=$!
sleep 0.5
cpu_before="$(cpu_secs "$col") $(cpu_secs "$CLICKHOUSE_PID") $(cpu_secs "$MOSQUITTO_PID") $(busy_secs)"
t0=$("$PUBLISH" send "$W/msgs" "$mport")
t_sub_b=
until [ "$(rows_written "$metrics" sightings)" = "$sightings" ]; do
  if [ -z "$t_sub_b" ] && ! kill -0 "$sub" 2>/dev/null; then
    t_sub_b=$(python3 -c "print($(date +%s.%N) - $t0)")
  fi
  sleep 0.05
done
t_col=$(python3 -c "print($(date +%s.%N) - $t0)")
wait "$sub"
[ -n "$t_sub_b" ] || t_sub_b=$(python3 -c "print($(date +%s.%N) - $t0)")
cpu_after="$(cpu_secs "$col") $(cpu_secs "$CLICKHOUSE_PID") $(cpu_secs "$MOSQUITTO_PID") $(busy_secs)"
stored=$(clickhouse-client --port "$tport" -q 'SELECT count() FROM footfall.sightings FINAL')

python3 - <<PY
m, s, b = $messages, $sightings, $bytes
ts, tc, tb = $t_sub, $t_col, $t_sub_b
rate = lambda t: f"{t:.2f} s = {s/t:,.0f} sightings/s ({m/t:,.0f} msgs/s)"
print(f"input: {s:,} sightings in {m:,} envelopes ({b/2**20:.0f} MiB, $ENCODING), preset $PRESET, batch age $AGE s, people ${PEOPLE:-as preset}")
print(f"(a) publish-city -> Mosquitto -> mosquitto_sub, alone: {rate(ts)}")
print(f"(b) publish-city -> Mosquitto -> collector -> ClickHouse: {rate(tc)}")
print(f"(b') the same publish -> Mosquitto -> mosquitto_sub, beside (b): {rate(tb)}")
print(f"ratio (b)/(a): {ts/tc:.2f}; (b)/(b'): {tb/tc:.2f}; rows in ClickHouse (FINAL): $stored")
am0, aa0 = map(float, "$cpu_a0".split())
am1, aa1 = map(float, "$cpu_a1".split())
c0, h0, m0, a0 = map(float, "$cpu_before".split())
c1, h1, m1, a1 = map(float, "$cpu_after".split())
c, h, mq, al = c1 - c0, h1 - h0, m1 - m0, a1 - a0
per = lambda x: f"{x:.1f} s ({x / s * 1e6:.2f} µs/sighting)"
print(f"CPU in (a): Mosquitto {per(am1 - am0)}, the rest (publishers, mosquitto_sub) "
      f"{per(aa1 - aa0 - am1 + am0)}; all {aa1 - aa0:.1f} s of {$(nproc) * ts:.1f} s")
print(f"CPU in (b): collector {per(c)}, ClickHouse {per(h)}, Mosquitto {per(mq)}, "
      f"the rest (publishers, mosquitto_sub) {per(al - c - h - mq)}; all {al:.1f} s of {$(nproc) * tc:.1f} s")
PY
