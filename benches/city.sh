#!/usr/bin/env bash
# City scale on one server (issue 16), for benches/README.md: the `city` preset (960 k people,
# ~1 M devices, 760 stores, 420 boards, 30 days, ~100 M sightings) through the real pipeline:
# its envelopes (fast mode, binary encoding) published by `publish-city` (one MQTT client per
# sensor, kept within two slots of SLOT_MINS of event time of each other, as live ones are,
# and at most BACKLOG messages ahead of what the collector has received) -> Mosquitto ->
# footfall-collector -> ClickHouse 18.16, with the city's inventory, plays, campaigns,
# receipts and loyalty links imported. Then:
#   - the time of each step, the peak RSS of every process (VmHWM), the disk each table uses,
#     and that every sighting arrived (sightings FINAL against the simulator's count), and
#     the batches missing as the Sensors page counts them;
#   - the campaign report (footfall-attribution report, peak RSS and wall time) beside the
#     time ClickHouse takes to scan the columns the report reads (visits, ad_plays, links,
#     receipts, traffic, the bridges' pairs and the sightings' ends), with clickhouse-client
#     in the same run;
#   - the dashboard's pages on this city (benches/dashboard.sh attach).
# Usage: bash benches/city.sh [DIR [LOADS]]
#   DIR keeps the generated city and its encoded messages (about 15 GiB) for another run
#   (default target/city-bench); LOADS of each dashboard page (default 10).
#   AGE=60 (the agents' batch age, seconds), SLOT_MINS=5, BACKLOG=20000, HORIZON_HOURS=6
#   (the collector's visits.horizon_hours), PEOPLE= (scales the population down, for a quicker try) in the
#   environment; REPORT_RUNS=3 reports are timed, the median counted; BASELINE=PATH times
#   another build's footfall-attribution on the same data in the same run (the one before a
#   change), a run of it after each of this build's, and says whether its tables are the same;
#   HOLD=1 stops after the report (the month compacted, its scans timed) and keeps ClickHouse
#   up (its ports in the log) for runs by hand, until the script is killed; COLLECTOR=PATH
#   ingests with another build's footfall-collector (the one before a change, for a
#   same-session figure).
#   FAULTS=1 stops Mosquitto for 300 s (past 1.5 keepalives: the collector loses its
#   connection) once a third of the sightings are committed, and ClickHouse for 200 s (past
#   clickhouse.timeout_secs: writes fail and are sent again; the collector stops reading, and
#   the broker drops it) at two thirds: every sighting must still arrive.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/local.sh
DIR=${1:-target/city-bench}
LOADS=${2:-10}
AGE=${AGE:-60}
SLOT_MINS=${SLOT_MINS:-5}
BACKLOG=${BACKLOG:-20000}
HORIZON_HOURS=${HORIZON_HOURS:-6}
PEOPLE=${PEOPLE:-}
BIN=target/release
cargo build --release --locked -q -p simulator -p collector -p attribution -p dashboard -p testkit --bins
cargo build --release --locked -q -p benches --bin publish-city
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$DIR"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$DIR/city.log"; }
# peak_rss PID: the process's peak resident set so far, MiB.
peak_rss() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# timed NAME CMD...: runs CMD under /usr/bin/time; its wall seconds and peak RSS (MiB) in
# $DIR/NAME.time (the last line: time puts a failed command's status before it). Returns
# CMD's status.
timed() {
  local name=$1 rc=0
  shift
  /usr/bin/time -f '%e %M' -o "$DIR/$name.time" "$@" || rc=$?
  read -r secs kib < <(tail -1 "$DIR/$name.time")
  log "$name: $secs s, peak RSS $((kib / 1024)) MiB"
  return $rc
}

# 1. The city (kept in DIR: generating it takes about 8 minutes). Its JSON envelopes are
# read once, to encode the messages, and then removed: 26 GiB that the database's merges
# need more (a month's compaction ran out of disk beside them).
if [ ! -f "$DIR/city/truth/summary.json" ] \
  || { [ ! -d "$DIR/msgs" ] && [ ! -d "$DIR/city/envelopes" ]; }; then
  rm -rf "$DIR/city" "$DIR/msgs"
  printf 'preset = "city"\n[output]\nmode = "envelopes"\nbatch_max_age_secs = %s\n' "$AGE" \
    > "$DIR/scenario.toml"
  [ -z "$PEOPLE" ] || printf '[population]\npeople = %s\n' "$PEOPLE" >> "$DIR/scenario.toml"
  timed generate "$BIN/footfall-sim" generate --config "$DIR/scenario.toml" --seed 1 --quiet \
    --out "$DIR/city"
fi
if [ ! -d "$DIR/msgs" ]; then
  timed prepare target/release/publish-city prepare "$DIR/city" "$W/msgs" binary
  mv "$W/msgs" "$DIR/msgs"
fi
rm -rf "$DIR/city/envelopes"
sightings=$(python3 -c "import json; print(json.load(open('$DIR/city/truth/summary.json'))['sightings'])")
bytes=$(python3 -c "import os, sys; d = sys.argv[1]; print(sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)))" "$DIR/msgs")
log "city: $sightings sightings, $((bytes / 1048576)) MiB of binary envelopes"

# 2. The servers, the schema, the imported files. The broker with the shipped limits on what
# it holds in flight: without one, Mosquitto 2.0.11 sent the collector every message it
# held, each reconnection had it send them all again, and each acknowledgement (and
# CONNECT) walked that list: with 0.7-0.9 M in flight under faults, ingest stood still for
# minutes (benches/README.md, runs 18 and 19).
start_servers "$W/servers" --mosquitto quiet --shipped-limits --clickhouse
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
url = "mqtt://127.0.0.1:$MOSQUITTO_PORT"
client_id = "city-collector"
# When the publisher ran ahead of the collector (before it followed the collector's metrics),
# the broker's backlog reached gigabytes: a 30-s keepalive lost the connection (its answer
# queued behind the backlog), and every reconnection redelivered thousands of messages.
keepalive_secs = 120
[ingest]
# The city lives in March 2026.
max_age_days = 3650
[visits]
# The publisher keeps the sensors within two slots of each other: a stay is written once.
lateness_secs = $((2 * SLOT_MINS * 60 + AGE))
# State kept behind the watermark for late data (default 48 h: at this city's scale that held
# 8.4 M stays in 8.2 GiB by its fourth day, benches/README.md).
horizon_hours = $HORIZON_HOURS
[metrics]
listen = "127.0.0.1:$metrics"
CONF
ch() { clickhouse-client --port "$tport" --database footfall "$@"; }
"$BIN/footfall-collector" --log warn migrate --config "$W/collector.toml"
for kind_file in sites:inventory/sites.csv sensors:inventory/sensors.csv ad-plays:ad_plays.csv \
                 campaigns:campaigns.jsonl receipts:receipts.csv links:links.csv; do
  timed "import-${kind_file%%:*}" "$BIN/footfall-collector" --log warn import \
    --config "$W/collector.toml" "${kind_file%%:*}" "$DIR/city/${kind_file#*:}"
done

# 3. Ingest: every sensor's envelopes through Mosquitto and the collector.
"${COLLECTOR:-$BIN/footfall-collector}" --log warn run --config "$W/collector.toml" 2> "$W/collector.log" &
col=$!
pids+=("$col")
wait_subscribed "$metrics"
cpu0="$(cpu_secs "$col") $(cpu_secs "$CLICKHOUSE_PID") $(cpu_secs "$MOSQUITTO_PID")"
/usr/bin/time -f '%e %M' -o "$DIR/publish.time" target/release/publish-city send "$DIR/msgs" \
  "$MOSQUITTO_PORT" "$SLOT_MINS" "127.0.0.1:$metrics" "$BACKLOG" > "$W/t0" 2> "$W/publisher.log" &
publisher=$!
pids+=("$publisher")
last=0
# fault NAME PID SECS: stops the process (SIGSTOP: its connections stay open, silent) for SECS.
fault() {
  log "faults: $1 stopped for $3 s at ${committed:-0} of $sightings sightings committed"
  kill -STOP "$2"
  sleep "$3"
  kill -CONT "$2"
  log "faults: $1 running again"
}
while :; do
  sleep 1
  committed=$(rows_written "$metrics" sightings)
  if [ "${committed:-0}" -ge "$sightings" ]; then
    # Redelivered messages are written again (the table's key collapses them): done once
    # every distinct sighting is in.
    t_end=$(date +%s.%N)
    [ "$(ch -q 'SELECT count() FROM sightings FINAL')" -lt "$sightings" ] || break
  fi
  if [ -n "${FAULTS:-}" ]; then
    if [ -z "${broker_fault:-}" ] && [ "${committed:-0}" -ge $((sightings / 3)) ]; then
      fault Mosquitto "$MOSQUITTO_PID" 300
      broker_fault=1
    elif [ -z "${clickhouse_fault:-}" ] && [ "${committed:-0}" -ge $((2 * sightings / 3)) ]; then
      fault ClickHouse "$CLICKHOUSE_PID" 200
      clickhouse_fault=1
    fi
  fi
  if ! kill -0 "$col" 2>/dev/null; then
    tail -30 "$W/collector.log"
    exit 1
  fi
  # Mosquitto drops a client's messages it has acknowledged to their sender when it deems
  # that client's queue full, and says so once, at notice level: those sightings cannot
  # arrive. Said here; and the run stops once nothing has moved for two minutes after.
  if [ -z "${broker_dropped:-}" ] && grep -q "Outgoing messages are being dropped" "$MOSQUITTO_LOG"; then
    broker_dropped=$(date +%s)
    log "broker: $(grep -m1 "Outgoing messages are being dropped" "$MOSQUITTO_LOG"); \
dropped a minute, 15-min average: $(mosquitto_sub -p "$MOSQUITTO_PORT" -C 1 -W 15 \
      -t '$SYS/broker/load/publish/dropped/15min' 2>/dev/null || echo unknown)"
  fi
  if [ -n "${broker_dropped:-}" ]; then
    if [ "${committed:-0}" != "${moved:-}" ]; then
      moved=${committed:-0} moved_at=$(date +%s)
    elif [ -n "${published:-}" ] && [ $(($(date +%s) - moved_at)) -ge 120 ]; then
      log "ingest: stopped at $(ch -q 'SELECT count() FROM sightings FINAL') of $sightings \
sightings: the broker dropped messages (above)"
      exit 1
    fi
  fi
  if [ -z "${published:-}" ] && ! kill -0 "$publisher" 2>/dev/null; then
    wait "$publisher" || { cat "$W/publisher.log"; exit 1; }
    published=1
  fi
  now=$(date +%s)
  if [ $((now - last)) -ge 60 ]; then
    held=$(curl -s "127.0.0.1:$metrics/metrics" | awk '$1 == "footfall_visit_stays" { s = $2 }
      $1 == "footfall_occupancy_sightings" { o = $2 } END { printf "%s stays, %s sightings", s, o }')
    log "ingest: ${committed:-0} of $sightings sightings committed; collector RSS $(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$col/status") MiB, holding $held"
    last=$now
  fi
done
log "collector: $(curl -s "127.0.0.1:$metrics/metrics" | awk '$1 ~ /^footfall_(mqtt_errors|mqtt_redeliveries|clickhouse_errors)_total$/ { printf "%s %s; ", $1, $2 }
  $1 == "footfall_batch_seconds_count" { b = $2 } END { printf "batches %s; ", b }')rows written $committed"
# The sightings per batch: their mean, and the share of the batches of at most each size
# (cumulative, from the histogram's buckets).
log "batches by sightings: $(curl -s "127.0.0.1:$metrics/metrics" | awk '
  $1 ~ /^footfall_batch_rows_bucket/ { match($1, /le="[^"]*"/); le[++n] = substr($1, RSTART + 4, RLENGTH - 5); c[n] = $2 }
  $1 == "footfall_batch_rows_count" { total = $2 } $1 == "footfall_batch_rows_sum" { sum = $2 }
  END { printf "mean %.0f;", (total ? sum / total : 0); for (i = 1; i <= n; i++) if (c[i] > 0) printf " <=%s %.0f%%", le[i], 100 * c[i] / total }')"
# What ClickHouse did for them: inserts, and rows merged per row inserted (its merges' share
# of the CPU grows with it).
log "ClickHouse: $(ch -q "SELECT event, value FROM system.events WHERE event IN ('InsertQuery', \
  'InsertedRows', 'Merge', 'MergedRows') ORDER BY event FORMAT TSV" | awk '{ printf "%s %s; ", $1, $2; v[$1] = $2 }
  END { if (v["InsertedRows"] > 0) printf "merged per inserted %.2f", v["MergedRows"] / v["InsertedRows"] }')"
[ -n "${published:-}" ] || wait "$publisher"
cat "$W/publisher.log" | tee -a "$DIR/city.log"
t_ingest=$(python3 -c "print($t_end - $(cat "$W/t0"))")
cpu1="$(cpu_secs "$col") $(cpu_secs "$CLICKHOUSE_PID") $(cpu_secs "$MOSQUITTO_PID")"
rss_collector=$(peak_rss "$col")
# The stage writes what it holds as it stops.
t_stop=$(date +%s.%N)
kill -TERM "$col"
while kill -0 "$col" 2>/dev/null; do
  # (A process that has exited but is not yet reaped has no VmHWM line.)
  r=$(peak_rss "$col" 2>/dev/null || true)
  [ -z "$r" ] || rss_collector=$r
  sleep 0.2
done
wait "$col" || { tail -30 "$W/collector.log"; exit 1; }
t_drain=$(python3 -c "print($(date +%s.%N) - $t_stop)")
read -r _ publisher_kib < "$DIR/publish.time"
stored=$(ch -q 'SELECT count() FROM sightings FINAL')
log "ingest: $t_ingest s from the first publish to the last sighting committed, then $t_drain s to stop"
python3 - "$sightings" "$stored" "$t_ingest" "$cpu0" "$cpu1" <<'PY' | tee -a "$DIR/city.log"
import sys
s, stored, t = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
c0, h0, m0 = map(float, sys.argv[4].split())
c1, h1, m1 = map(float, sys.argv[5].split())
print(f"  {s / t:,.0f} sightings/s; in ClickHouse (FINAL) {stored:,} of {s:,}: {'all arrived' if stored == s else 'MISSING ' + str(s - stored)}")
for name, cpu in [("collector", c1 - c0), ("ClickHouse", h1 - h0), ("Mosquitto", m1 - m0)]:
    print(f"  CPU {name}: {cpu:.0f} s ({cpu / s * 1e6:.2f} µs/sighting)")
PY
# The batches that never came, as the dashboard's Sensors page counts them (each sensor's
# numbers missing between its first and last stored), here over the whole month.
log "batches missing: $(ch -q "SELECT sum(missing), countIf(missing > 0), count() FROM \
  (SELECT sensor, max(seq) - min(seq) + 1 - uniqExact(seq) AS missing FROM batches GROUP BY sensor) \
  FORMAT TSV" | awk '{print $1 " at " $2 " of " $3 " sensors"}')"
log "peak RSS: collector $rss_collector MiB, Mosquitto $(peak_rss "$MOSQUITTO_PID") MiB, publisher $((publisher_kib / 1024)) MiB, ClickHouse so far $(peak_rss "$CLICKHOUSE_PID") MiB"
ch -q "SELECT table, sum(rows), formatReadableSize(sum(bytes_on_disk)) FROM system.parts WHERE active AND database = 'footfall' GROUP BY table ORDER BY sum(bytes_on_disk) DESC FORMAT PrettyCompactNoEscapes" | tee -a "$DIR/city.log"

# 4. The campaign report, beside ClickHouse scanning the columns it reads (the median of 5
# runs of each scan; the tables' whole month: the report's period, its pre-period and its
# windows cover the city's 30 days).
campaign=$(python3 -c "import json; print(json.loads(open('$DIR/city/campaigns.jsonl').readline())['id'])")
# The month as the collector leaves it once settled (`ingest.max_age_days` past its end; the
# city's month is older than that, but this bench's collector takes old data): compacted by
# `footfall-collector retention`, with every table kept. The report reads it without FINAL.
sed 's/^max_age_days = 3650$/max_age_days = 1/' "$W/collector.toml" > "$W/settled.toml"
printf '[retention]\n%s\n' "sightings_days = 0
visits_days = 0
sensor_status_days = 0
rejected_days = 0
quarantine_days = 0
occupancy_days = 0
traffic_days = 0" >> "$W/settled.toml"
timed compact "$BIN/footfall-collector" --log warn retention --config "$W/settled.toml" \
  | sed 's/^/  /' | tee -a "$DIR/city.log"
scan() {
  local times=()
  for _ in 1 2 3 4 5; do
    times+=("$(ch --time --format Null -q "$1" 2>&1 >/dev/null | tail -1)")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}
scans=(
  "SELECT count() FROM visits WHERE NOT ignore(device, epoch, site, day, class, kind, first_ms, last_ms, retracted)"
  "SELECT count() FROM ad_plays WHERE NOT ignore(board_id, day, creative_id, start_ms, end_ms)"
  "SELECT count() FROM links WHERE NOT ignore(epoch, device, loyalty_id)"
  "SELECT count() FROM receipts WHERE NOT ignore(store_id, day, loyalty_id, at_ms, amount_cents)"
  "SELECT count() FROM traffic WHERE NOT ignore(site, day, visitors)"
  "SELECT count() FROM bridges WHERE NOT ignore(epoch, next, device)"
  "SELECT count() FROM sightings WHERE NOT ignore(last_ms)"
)
scan_total=0
for q in "${scans[@]}"; do
  t=$(scan "$q")
  log "scan $t s: $q"
  scan_total=$(python3 -c "print($scan_total + $t)")
done
# For scale, the same columns of the two tables the report reads with FINAL (the latest
# version of each row), read so.
for q in "${scans[@]:0:2}"; do
  q=${q/FROM visits/FROM visits FINAL}
  q=${q/FROM ad_plays/FROM ad_plays FINAL}
  log "scan with FINAL $(scan "$q") s: $q"
done
# The report REPORT_RUNS times (default 3; with BASELINE, each run beside one of the baseline's,
# alternated), its time the median of the runs, as each scan's is. A report that fails (a
# query over the server's memory limit) is logged, and the pages are still measured.
# report_run NAME BIN OUT: one report into OUT, its log in $DIR/NAME.log; its wall seconds in
# $DIR/NAME.time (`timed`).
report_run() {
  rm -rf "$3"
  NO_COLOR=1 timed "$1" "$2" --log warn,attribution::data=debug report --campaign "$campaign" \
    --out "$3" --clickhouse-url "http://127.0.0.1:$hport" --board-capture 0.8:0.05 \
    --store-capture 0.43:0.03 2> "$DIR/$1.log"
}
# median FILE...: the median of the wall seconds in the `timed` files (the middle run, or the
# mean of the two middle ones).
median() {
  for f in "$@"; do tail -1 "$f" | cut -d' ' -f1; done | sort -n \
    | awk '{ v[NR] = $1 } END { print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'
}
reports=() baselines=()
for i in $(seq "${REPORT_RUNS:-3}"); do
  if report_run "report-$i" "$BIN/footfall-attribution" "$W/report"; then
    reports+=("$DIR/report-$i.time")
    grep -o 'query done.*' "$DIR/report-$i.log" | sed 's/^/  /' | tee -a "$DIR/city.log"
  else
    log "report FAILED: $(grep -v 'query done' "$DIR/report-$i.log" | tail -2)"
  fi
  if [ -n "${BASELINE:-}" ]; then
    if report_run "report-baseline-$i" "$BASELINE" "$W/report-baseline"; then
      baselines+=("$DIR/report-baseline-$i.time")
      grep -o 'query done.*' "$DIR/report-baseline-$i.log" | sed 's/^/  baseline: /' \
        | tee -a "$DIR/city.log"
    else
      log "baseline report FAILED: $(grep -v 'query done' "$DIR/report-baseline-$i.log" | tail -3)"
    fi
  fi
done
ratio() { python3 -c "print(round($1 / $scan_total, 2))"; }
if [ "${#reports[@]}" -gt 0 ]; then
  report_secs=$(median "${reports[@]}")
  log "report / scan of its columns: $report_secs / $scan_total s = $(ratio "$report_secs") (median of ${#reports[@]} runs)"
fi
if [ "${#baselines[@]}" -gt 0 ]; then
  base_secs=$(median "${baselines[@]}")
  log "baseline report / scan of its columns: $base_secs / $scan_total s = $(ratio "$base_secs") (median of ${#baselines[@]} runs)"
  for t in windows.csv boards.csv daily.csv curves.csv; do
    if cmp -s "$W/report/$t" "$W/report-baseline/$t"; then log "report $t: the same as the baseline's"
    else log "report $t: DIFFERS from the baseline's"; fi
  done
fi

if [ -n "${HOLD:-}" ]; then
  log "holding: ClickHouse http $hport, tcp $tport (database footfall) until killed"
  while kill -0 "$CLICKHOUSE_PID" 2>/dev/null; do sleep 5; done
  exit 1
fi

# 5. The dashboard's pages on this city: its last week, and its whole month.
mkdir -p "$W/reports" && ln -s ../report "$W/reports/$campaign"
read -r first last week < <(ch -q "SELECT min(day), max(day), max(day) - 6 FROM traffic FORMAT TSV")
CLICKHOUSE_HTTP_PORT=$hport CLICKHOUSE_TCP_PORT=$tport REPORTS=$W/reports \
  PERIOD="from=$week&to=$last" LONG="from=$first&to=$last" \
  bash benches/dashboard.sh attach "$LOADS" | tee -a "$DIR/city.log"
log "peak RSS: ClickHouse $(peak_rss "$CLICKHOUSE_PID") MiB (the whole run)"
