#!/usr/bin/env bash
# Dashboard page latency for benches/README.md (issue 13): each page loaded LOADS times in a
# row (after two warm-up loads) by one client on loopback, p50 and p95 of the whole request,
# and of its two parts from the page's Server-Timing header (db: time in ClickHouse, as the
# dashboard waited for it; app: the rest, decoding, computing, rendering); beside, in the
# same run, the page's heaviest query (read from the dashboard's debug log) run alone with
# clickhouse-client --time (median of 10).
#   demo   the demo city as `make demo` builds it (the real pipeline; its servers, a second
#          dashboard process of our own with debug logging)
#   large  a city of the `city` preset's shape, written straight into ClickHouse 18.16:
#          760 stores and 420 boards over 30 days (58 days of visits, for the returning
#          visitors' look-back), 1,180 sensors with a status a minute over the last 30 days
#   attach servers already running with a city in them (benches/city.sh): the environment
#          gives CLICKHOUSE_HTTP_PORT, CLICKHOUSE_TCP_PORT, REPORTS (the reports directory),
#          PERIOD and LONG (the pages' query strings for a week and for the whole city)
# Usage: bash benches/dashboard.sh demo|large|attach [LOADS]
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/local.sh
MODE=${1:-demo}
LOADS=${2:-30}
BIN=target/release
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

# bench_user: a user of our own, with a session key, for the dashboard this script starts.
bench_user() {
  users=$W/users
  key=$W/session.key
  head -c 64 /dev/urandom > "$key" && chmod 600 "$key"
  user=bench; password=bench-password-1
  echo "$password" | "$BIN/footfall-dashboard" --log warn add-user --users "$users" "$user" >/dev/null
}

case "$MODE" in
demo)
  touch "$W/demo.log"
  setsid make -s demo DEMO_SERVE=1 > "$W/demo.log" 2>&1 &
  pids+=("-$!")
  until grep -q "^== the dashboard over the demo city" "$W/demo.log"; do
    if ! kill -0 -- "${pids[0]}" 2>/dev/null; then tail -30 "$W/demo.log"; exit 1; fi
    sleep 2
  done
  . target/demo/servers/servers.env
  period=$(sed 's/.*?//' target/demo/dashboard/url)
  long_from=$(python3 -c "import csv; print(min(r['hour'][:10] for r in csv.DictReader(open('target/demo/city/truth/store_hours.csv'))))")
  long="from=$long_from&${period#*&}"
  users=$PWD/target/demo/dashboard/users
  key=$PWD/target/demo/dashboard/session.key
  reports=$PWD/target/demo/reports
  user=demo; password=demo-password-1
  ;;
large)
  cargo build --release --locked -q -p collector -p dashboard -p testkit --bins
  start_servers "$W/ch" --clickhouse
  pids+=("$SERVERS_PID")
  printf 'version = 1\n[clickhouse]\nurl = "http://127.0.0.1:%s"\n' "$CLICKHOUSE_HTTP_PORT" > "$W/collector.toml"
  "$BIN/footfall-collector" --log warn migrate --config "$W/collector.toml"
  ch() { clickhouse-client --port "$CLICKHOUSE_TCP_PORT" --database footfall --max_memory_usage 8000000000 -q "$1"; }
  t0=$(date +%s)
  ch "INSERT INTO sites (site_id, kind, brand, lat, lon, tz, capture_rate, open_hour, close_hour, rssi_threshold_dbm, min_dwell_secs, imported_ms)
      SELECT if(number < 760, concat('store-', substring(toString(1000 + number), 2)), concat('board-', toString(number - 760))),
        if(number < 760, 'store', 'billboard'), if(number < 260, 'acme', if(number < 760, 'bolt-cola', '')), 0, 0, 'Europe/Berlin',
        if(number < 760, 0.43, 0), 8, 21, -70, 180, 1 FROM numbers(1180)"
  ch "INSERT INTO sensors (sensor_id, site_id, kind, lat, lon, imported_ms)
      SELECT site_id, site_id, kind, 0, 0, 1 FROM sites"
  # Rows from numbers() (streamed in blocks; an ARRAY JOIN per site would build each insert
  # in one block). Site x: store-000..store-759, then board-0..board-419.
  site="if(x < 760, concat('store-', substring(toString(1000 + x), 2)), concat('board-', toString(x - 760)))"
  # Stores: 24 local hours a day, visitors and passers-by through opening hours.
  ch "INSERT INTO traffic (site, day, local_hour, hour_ms, visitors, passers_by, visitor_devices, passer_by_devices, addresses, unlinked_devices, fixtures, dwell_under_5, dwell_5_20, dwell_20_60, dwell_over_60, capture_rate, estimator, calibrated, version)
      SELECT $site AS name, toDate('2026-03-02') + intDiv(n, 24) AS d, n % 24 AS h, (toUInt32(toDateTime(d)) + h * 3600) * 1000,
        if(h >= 8 AND h < 21, 10 + cityHash64(name, n) % 20, 0) AS v, 4 * v, toUInt32(0.43 * v), toUInt32(1.7 * v), toUInt32(12 * v), 0, 2,
        toUInt32(0.1 * v), toUInt32(0.2 * v), toUInt32(0.1 * v), 0, 0.43, 'present-devices/4', 0, 1
      FROM (SELECT number % 760 AS x, intDiv(number, 760) AS n FROM numbers(760 * 30 * 24))"
  for m in 15 5; do
    ch "INSERT INTO occupancy (site, day, window_mins, start_ms, people, lo, hi, global_devices, randomized_devices, fixtures, estimator, calibrated, version)
        SELECT $site, toDate(toDateTime(intDiv(s, 1000))), $m, toInt64(toUInt32(toDateTime('2026-03-02 00:00:00')) * 1000 + i * $m * 60000) AS s,
          3 + cityHash64(x, i) % 5 AS p, p - 2, p + 3, 0.2, p, 2, 'present-devices/4', 0, 1
        FROM (SELECT number % 760 AS x, intDiv(number, 760) AS i FROM numbers(760 * $((30 * 1440 / m))))"
  done
  # Visits: 300 stays a day at a store (a quarter visitors, one in twenty global addresses),
  # from 28 days before the month; 1,500 a day at a board over the month. Devices from a
  # population of a million.
  ch "INSERT INTO visits (site, day, device, visit_id, epoch, class, fingerprint, first_ms, last_ms, dwell_secs, rssi_max, sightings, kind, retracted, version)
      SELECT $site, toDate(toDateTime(intDiv(f, 1000))), cityHash64(k % 1000000), k, 1, if(k % 20 = 0, 'global', 'local'), 0,
        toInt64(toUInt32(toDateTime('2026-02-02 08:00:00')) * 1000 + intDiv(k, 300) * 86400000 + (k % 300) * 156000) AS f, f + 600000, 600, -50, 3,
        if(k % 4 = 0, 'visitor', 'passer_by'), 0, 1
      FROM (SELECT number % 760 AS x, intDiv(number, 760) AS k FROM numbers(760 * 58 * 300))"
  ch "INSERT INTO visits (site, day, device, visit_id, epoch, class, fingerprint, first_ms, last_ms, dwell_secs, rssi_max, sightings, kind, retracted, version)
      SELECT $site, toDate(toDateTime(intDiv(f, 1000))), cityHash64(k % 1000000 + 7), k, 1, if(k % 20 = 0, 'global', 'local'), 0,
        toInt64(toUInt32(toDateTime('2026-03-02 06:00:00')) * 1000 + intDiv(k, 1500) * 86400000 + (k % 1500) * 43000) AS f, f + 30000, 30, -60, 2,
        'passer_by', 0, 1
      FROM (SELECT 760 + number % 420 AS x, intDiv(number, 420) AS k FROM numbers(420 * 30 * 1500))"
  ch "INSERT INTO sensor_status (sensor, day, at_ms, site, online, uptime_secs, frames_captured, frames_dropped, frames_malformed, spool_batches, spool_bytes, spool_dropped_batches, config_version, clock_synced, received_ms)
      SELECT $site AS name, toDate(toDateTime(intDiv(a, 1000))), toInt64((toUInt32(toStartOfDay(now())) - 30 * 86400) * 1000 + i * 60000) AS a, name, 1, i * 60, i * 900, 0, 0, 0, 0, 0, 1, 1, a
      FROM (SELECT number % 1180 AS x, intDiv(number, 1180) AS i FROM numbers(1180 * 30 * 1440))"
  ch "INSERT INTO campaigns (campaign_id, brand, creative_id, boards, start_ms, end_ms, spend, currency, window_days, slot_secs, loop_slots, slots_per_loop, imported_ms)
      SELECT concat('campaign-', toString(number)), if(number % 2 = 0, 'acme', 'bolt-cola'), 'c', ['board-1', 'board-2'], 1772409600000, 1773014400000, 10000, 'EUR', 14, 10, 12, 1, 1 FROM numbers(10)"
  ch "OPTIMIZE TABLE visits FINAL" || true
  echo "large city written in $(( $(date +%s) - t0 )) s:"
  ch "SELECT table, sum(rows), formatReadableSize(sum(bytes)) FROM system.parts WHERE active AND database = 'footfall' GROUP BY table ORDER BY table FORMAT TSV" | sed 's/^/  /'
  period="from=2026-03-25&to=2026-03-31"
  long="from=2026-03-02&to=2026-03-31"
  reports=$W/reports
  mkdir -p "$reports"
  bench_user
  ;;
attach)
  # The caller has built the binaries (a build of the dashboard alone would unify features
  # differently, and build it again).
  period=${PERIOD:?} long=${LONG:?} reports=${REPORTS:?}
  : "${CLICKHOUSE_HTTP_PORT:?}" "${CLICKHOUSE_TCP_PORT:?}"
  bench_user
  ;;
*)
  echo "usage: bash benches/dashboard.sh demo|large|attach [LOADS]" >&2
  exit 64
  ;;
esac

dport=$(free_port)
cat > "$W/dashboard.toml" <<CONF
version = 1
[clickhouse]
url = "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT"
[http]
listen = "127.0.0.1:$dport"
[auth]
users_file = "$users"
session_key_file = "$key"
[reports]
dir = "$reports"
CONF
NO_COLOR=1 "$BIN/footfall-dashboard" --log "warn,dashboard::db=debug" serve --config "$W/dashboard.toml" \
  > "$W/dashboard.log" 2>&1 &
pids+=("$!")

python3 - "$dport" "$user" "$password" "$period" "$long" "$LOADS" "$W/dashboard.log" "$CLICKHOUSE_TCP_PORT" "$MODE" <<'PY'
import http.client, re, statistics, subprocess, sys, time, urllib.parse
port, user, password, period, long, loads, log, tport, mode = sys.argv[1:]
loads = int(loads)
def request(method, path, body=None, headers={}):
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            return r
        except OSError:
            time.sleep(0.1)
    sys.exit("bench: the dashboard does not answer")
form = urllib.parse.urlencode({"user": user, "password": password})
r = request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
cookie = {"Cookie": r.getheader("Set-Cookie").split(";")[0]}
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
c.request("GET", f"/stores.csv?{period}", headers=cookie)
store = c.getresponse().read().decode().splitlines()[1].split(",")[0]
pages = [
    ("Stores, 7 days", f"/stores?{period}"),
    ("Stores, month", f"/stores?{long}"),
    ("Store, 7 days", f"/store?site={store}&{period}"),
    ("Store, month", f"/store?site={store}&{long}"),
    ("Compare 6 stores, 7 days", f"/compare?{period}"),
    ("Campaigns", "/campaigns"),
    ("Sensors", "/sensors"),
]
ansi = re.compile(r"\x1b\[[0-9;]*m")
def queries_since(offset):
    with open(log) as f:
        f.seek(offset)
        text = ansi.sub("", f.read())
    return [(float(m.group(1)), m.group(2)) for m in re.finditer(r"ms=([0-9.]+) rows=\d+ sql=(.*)", text)]
def alone(sql):
    times = []
    for _ in range(10):
        p = subprocess.run(["clickhouse-client", "--port", tport, "--database", "footfall", "--time",
                            "--format", "Null", "-q", sql], capture_output=True, text=True, check=True)
        times.append(float(p.stderr.strip().splitlines()[-1]) * 1e3)
    return statistics.median(times)
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]
print(f"{mode}: {loads} loads of each page (after 2 warm-up loads); ms")
print(f"{'page':<26} {'p50':>8} {'p95':>8} {'db p50':>8} {'app p50':>8} {'app/db':>7}   {'heaviest query alone':>21}")
for name, path in pages:
    for _ in range(2):
        request("GET", path, headers=cookie)
    wall, db, app = [], [], []
    for i in range(loads):
        offset = len(open(log).read())
        t = time.perf_counter()
        r = request("GET", path, headers=cookie)
        wall.append(1e3 * (time.perf_counter() - t))
        if r.status != 200:
            sys.exit(f"bench: {path} answered {r.status}")
        timing = dict(re.findall(r"(\w+);dur=([0-9.]+)", r.getheader("Server-Timing")))
        db.append(float(timing["db"]))
        app.append(float(timing["app"]))
    ms, heaviest = max(queries_since(offset))
    print(f"{name:<26} {pct(wall, .5):>8.1f} {pct(wall, .95):>8.1f} {pct(db, .5):>8.1f} {pct(app, .5):>8.1f}"
          f" {pct(app, .5) / max(pct(db, .5), 1e-9):>7.2f}   {alone(heaviest):>8.1f} (in page {ms:.1f})")
PY
