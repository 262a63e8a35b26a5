#!/usr/bin/env bash
# The main job: a simulated city (the `demo` preset: a week's flight on eight boards, six
# stores) -> its captures replayed through one footfall-agent per sensor -> a real local
# Mosquitto -> footfall-collector (sightings, and site visits from its timely stage) -> a real
# local ClickHouse (with the city's inventory, plays, campaigns, receipts and links imported)
# -> footfall-attribution's campaign report, and footfall-dashboard's Stores page over the
# same tables; an independent subscriber checks the delivery, and the headline is printed
# beside the simulator's truth. Everything runs as user
# processes in target/demo, stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/local.sh
BIN=target/release
WORK=target/demo
rm -rf "$WORK" && mkdir -p "$WORK"

# Mosquitto and ClickHouse as in the tests (footfall-local). The broker's log records every
# packet: the demo waits for mosquitto_sub's SUBSCRIBE in it.
start_servers "$WORK/servers" --mosquitto all --clickhouse
servers=$SERVERS_PID
port=$MOSQUITTO_PORT
hport=$CLICKHOUSE_HTTP_PORT
tport=$CLICKHOUSE_TCP_PORT
sub=""
collector=""
dashboard=""
cleanup() {
  for p in "$sub" "$collector" "$dashboard" "$servers"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== 1. simulate the demo city (seed 1)"
"$BIN/footfall-sim" generate --preset demo --seed 1 --out "$WORK/city"
# The share of their visitors the store sensors hear, as a manual count at install measures
# it: ATTRIBUTION.md's reference case (stores hear 40-45 %). The stores' rows of the
# inventory carry it (the traffic table's visitors are corrected with it), and the report
# takes it too.
STORE_CAPTURE=0.43
python3 - "$WORK/city/inventory/sites.csv" "$STORE_CAPTURE" <<'PY'
import csv, sys
path, rate = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(path)))
with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]) + ["capture_rate"])
    w.writeheader()
    for r in rows:
        w.writerow({**r, "capture_rate": rate if r["kind"] == "store" else ""})
PY

echo "== 2. the collector (a local process), importing the city's files"
mport=$(free_port)
cat > "$WORK/collector.toml" <<CONF
version = 1
[clickhouse]
url = "http://127.0.0.1:$hport"
[mqtt]
url = "mqtt://127.0.0.1:$port"
client_id = "demo-collector"
[ingest]
# The demo city lives in March 2026; accept data that old.
max_age_days = 3650
[visits]
# The agents replay three weeks each as fast as they can, so one sensor's data can be days
# behind another's: keep state for the whole city (live sensors are minutes apart).
horizon_hours = 1000
[metrics]
listen = "127.0.0.1:$mport"
CONF
"$BIN/footfall-collector" check-config "$WORK/collector.toml"
for kind_file in sites:inventory/sites.csv sensors:inventory/sensors.csv ad-plays:ad_plays.csv \
                 campaigns:campaigns.jsonl receipts:receipts.csv links:links.csv; do
  "$BIN/footfall-collector" --log warn import --config "$WORK/collector.toml" \
    "${kind_file%%:*}" "$WORK/city/${kind_file#*:}"
done
"$BIN/footfall-collector" --log warn run --config "$WORK/collector.toml" 2> "$WORK/collector.log" &
collector=$!
wait_subscribed "$mport"

echo "== 3. one sensor agent per sensor, replaying its capture through Mosquitto on port $port"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'footfall/v1/+/+/sightings' -q 1 -i demo-sub -v \
  > "$WORK/received.txt" &
sub=$!
for _ in $(seq 100); do grep -q "SUBSCRIBE from demo-sub" "$MOSQUITTO_LOG" 2>/dev/null && break; sleep 0.1; done
tail -n +2 "$WORK/city/inventory/sensors.csv" | while IFS=, read -r sensor site kind _; do
  d="$WORK/agents/$sensor" && mkdir -p "$d"
  cp "$WORK/city/tenant.key" "$d/tenant.key" && chmod 600 "$d/tenant.key"
  cat > "$d/agent.toml" <<CONF
version = 1
[sensor]
id = "$sensor"
site = "$site"
site_kind = "$kind"
[identity]
secret_file = "$PWD/$d/tenant.key"
[mqtt]
url = "mqtt://127.0.0.1:$port"
client_id = "demo-$sensor"
[spool]
dir = "$PWD/$d/spool"
CONF
  "$BIN/footfall-agent" --log warn replay --config "$d/agent.toml" \
    --pcap "$WORK/city/captures/$sensor.pcap" --summary "$d/summary.json"
done
# The collector commits and acknowledges within a second of the last message.
published=$(python3 -c "import glob, json; print(sum(json.load(open(p))['sightings'] + json.load(open(p))['interim_updates'] for p in glob.glob('$WORK/agents/*/summary.json')))")
for _ in $(seq 600); do
  [ "$(clickhouse-client --port "$tport" -q 'SELECT count() FROM footfall.sightings FINAL')" = "$published" ] && break
  sleep 0.2
done
kill -TERM "$collector" && wait "$collector" || true
collector=""
clickhouse-client --port "$tport" -q "SELECT 'tables (rows, de-duplicated):', '' FORMAT TSV" > "$WORK/tables.txt"
for t in sites sensors ad_plays campaigns receipts links sightings rejected; do
  clickhouse-client --port "$tport" -q "SELECT '$t', count() FROM footfall.$t FINAL FORMAT TSV" >> "$WORK/tables.txt"
done
clickhouse-client --port "$tport" -q "SELECT 'visits (stream stage)', concat(toString(count()), ': ', \
  toString(countIf(kind = 'visitor')), ' visitors, ', toString(countIf(kind = 'passer_by')), ' passers-by') \
  FROM footfall.visits FINAL WHERE retracted = 0 FORMAT TSV" >> "$WORK/tables.txt"

# People per store and 15-min window (the stream stage's occupancy table), device keys
# heard per window, store traffic per day (the traffic table, in people) and the visits
# table's visitors (device keys), for the summary.
clickhouse-client --port "$tport" -q "SELECT site, start_ms, people FROM footfall.occupancy FINAL \
  WHERE window_mins = 15 FORMAT TSV" > "$WORK/occupancy.tsv"
clickhouse-client --port "$tport" -q "SELECT site, intDiv(first_ms, 900000) * 900000 AS w, \
  uniqExact(device) FROM footfall.sightings FINAL GROUP BY site, w FORMAT TSV" > "$WORK/keys.tsv"
clickhouse-client --port "$tport" -q "SELECT site, toString(day), sum(visitors), sum(visitor_devices), \
  sum(passers_by), max(capture_rate) FROM footfall.traffic FINAL GROUP BY site, day FORMAT TSV" \
  > "$WORK/traffic.tsv"
clickhouse-client --port "$tport" -q "SELECT site, toString(day), count() FROM footfall.visits FINAL \
  WHERE retracted = 0 AND kind = 'visitor' GROUP BY site, day FORMAT TSV" > "$WORK/visit_keys.tsv"

echo "== 4. the campaign report"
campaign=$(python3 -c "import json; print(json.loads(open('$WORK/city/campaigns.jsonl').readline())['id'])")
# People-scale inputs: the capture rates of the calibration (ATTRIBUTION.md's reference case:
# store sensors see 40-45 % of visitors; board sensors, in view, most passers).
"$BIN/footfall-attribution" report --campaign "$campaign" --out "$WORK/report" \
  --clickhouse-url "http://127.0.0.1:$hport" --board-capture 0.8:0.05 \
  --store-capture "$STORE_CAPTURE:0.03" \
  | tee "$WORK/report.txt"
# The dashboard finds each campaign's report in its own folder of the reports directory.
mkdir -p "$WORK/reports" && ln -sfn ../report "$WORK/reports/$campaign"

echo "== 5. the dashboard (footfall-dashboard), signed in as a demo user"
mkdir -p "$WORK/dashboard"
head -c 64 /dev/urandom > "$WORK/dashboard/session.key" && chmod 600 "$WORK/dashboard/session.key"
rm -f "$WORK/dashboard/users"
echo "demo-password-1" | "$BIN/footfall-dashboard" --log warn add-user --users "$WORK/dashboard/users" demo
dport=$(free_port)
cat > "$WORK/dashboard/dashboard.toml" <<CONF
version = 1
[clickhouse]
url = "http://127.0.0.1:$hport"
[http]
listen = "127.0.0.1:$dport"
[auth]
users_file = "$PWD/$WORK/dashboard/users"
session_key_file = "$PWD/$WORK/dashboard/session.key"
[reports]
dir = "$PWD/$WORK/reports"
CONF
"$BIN/footfall-dashboard" --log warn serve --config "$WORK/dashboard/dashboard.toml" &
dashboard=$!
# The city's last week, as the Stores page shows it (CSV: the same figures).
python3 - "$dport" "$WORK" <<'PY'
import csv, http.client, sys, time, urllib.parse
port, w = sys.argv[1], sys.argv[2]
days = sorted({r["hour"][:10] for r in csv.DictReader(open(f"{w}/city/truth/store_hours.csv"))})
def request(method, path, body=None, headers={}):
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
            c.request(method, path, body=body, headers=headers)
            return c.getresponse()
        except OSError:
            time.sleep(0.1)
    sys.exit("demo: the dashboard does not answer")
# The session cookie is Secure (browsers send it to localhost over plain HTTP; Python's
# cookie jar does not), so it is carried by hand.
form = urllib.parse.urlencode({"user": "demo", "password": "demo-password-1", "next": "/stores"})
r = request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
if r.status != 303 or not cookie:
    sys.exit(f"demo: signing in to the dashboard failed ({r.status})")
path = f"/stores.csv?from={days[-7]}&to={days[-1]}&sort=visitors&order=desc"
r = request("GET", path, headers={"Cookie": cookie})
body = r.read().decode()
if r.status != 200 or not body.startswith("store,brand,"):
    sys.exit(f"demo: the dashboard's {path} answered {r.status}: {body[:200]}")
open(f"{w}/dashboard/stores.csv", "w").write(body)
url = f"http://127.0.0.1:{port}/stores?from={days[-7]}&to={days[-1]}"
open(f"{w}/dashboard/url", "w").write(url)
print(f"{url} (user demo), as CSV:")
print("  " + body.strip().replace("\n", "\n  "))
PY
# Screenshots of the main pages, taken by Debian's Chromium (driven over WebDriver), next to
# the report.
python3 - "$dport" "$WORK" "$(free_port)" <<'PY'
import base64, json, subprocess, sys, tempfile, time, urllib.request
port, w, wport = sys.argv[1], sys.argv[2], sys.argv[3]
base = open(f"{w}/dashboard/url").read().split("/stores")[0]
period = open(f"{w}/dashboard/url").read().split("?")[1]
store = open(f"{w}/dashboard/stores.csv").read().splitlines()[1].split(",")[0]
driver = subprocess.Popen(["chromedriver", f"--port={wport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def wd(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{wport}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["value"]
try:
    for _ in range(100):
        try:
            wd("GET", "/status"); break
        except OSError:
            time.sleep(0.1)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1280,1700", f"--user-data-dir={tempfile.mkdtemp()}"]
    sid = wd("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions":
             {"binary": "/usr/bin/chromium", "args": args}}}})["sessionId"]
    s = f"/session/{sid}"
    def element(css):
        return list(wd("POST", f"{s}/element", {"using": "css selector", "value": css}).values())[0]
    wd("POST", f"{s}/url", {"url": f"{base}/login"})
    wd("POST", f"{s}/element/{element('input[name=user]')}/value", {"text": "demo"})
    wd("POST", f"{s}/element/{element('input[name=password]')}/value", {"text": "demo-password-1"})
    wd("POST", f"{s}/element/{element('button[type=submit]')}/click", {})
    pages = {"stores": f"/stores?{period}", "store": f"/store?site={store}&{period}",
             "compare": f"/compare?{period}", "campaigns": "/campaigns", "sensors": "/sensors"}
    for name, path in pages.items():
        wd("POST", f"{s}/url", {"url": base + path})
        if not wd("GET", f"{s}/url").startswith(base + path.split("?")[0]):
            sys.exit(f"demo: the dashboard's {path} did not open in Chromium")
        open(f"{w}/report/dashboard-{name}.png", "wb").write(base64.b64decode(wd("GET", f"{s}/screenshot")))
    wd("DELETE", s)
finally:
    driver.kill()
print(f"screenshots of the dashboard: {w}/report/dashboard-{{{','.join(pages)}}}.png")
PY

echo "== 6. summary"
python3 - "$WORK" <<'PY'
import glob, json, os, sys
w = sys.argv[1]
truth = json.load(open(f"{w}/city/truth/summary.json"))
agents = [json.load(open(p)) for p in sorted(glob.glob(f"{w}/agents/*/summary.json"))]
received = [json.loads(l.split(" ", 1)[1]) for l in open(f"{w}/received.txt") if l.strip()]
sightings = sum(len(e["sightings"]) for e in received)
final = sum(1 for e in received for g in e["sightings"] if g["final"])
print(f"city                   {truth['people']} people, {truth['devices']} devices, {truth['sensors']} sensors, {truth['days']} days")
print(f"probe requests         {sum(a['probe_requests'] for a in agents):>9}   (simulated {truth['probe_requests'] - truth['corrupt_probe_requests']} intact, {truth['corrupt_probe_requests']} damaged)")
print(f"dropped bad FCS        {sum(a['dropped']['bad_fcs'] for a in agents):>9}")
print(f"sightings (agents)     {sum(a['sightings'] for a in agents):>9}   (simulator: {truth['sightings']})")
print(f"batches received       {len(received):>9}   by mosquitto_sub, {sightings} sightings ({final} final)")
if final != truth["sightings"]:
    sys.exit(f"demo: {final} final sightings arrived, the simulator made {truth['sightings']}")
for c in truth["campaigns"]:
    d = c["devices"]
    print(f"campaign {c['id']}: configured +{c['configured_lift_pp']:.1f} pp on a visit within "
          f"{c['effect_days']} d of a first exposure; realized +{c['realized_effect_pp']:.2f} pp")
    print(f"  sensed devices: exposed {d['n_exposed']}, control {d['n_control']}; the lift they can show "
          f"over {c['window_days']} d: {d['target_lift_pp']:+.2f} pp (observed {d['observed_lift_pp']:+.2f} pp)")
print(f"store capture          {truth['store_capture']:.2f} of visitors seen by the store sensors")
report = json.load(open(f"{w}/report/report.json"))
truth_c = {c["id"]: c for c in truth["campaigns"]}[report["campaign"]["id"]]
for win in report["windows"]:
    tw = [x for x in truth_c["devices_by_window"] if x["window_days"] == win["window_days"]]
    if not tw or win["comparison"]["exposed"]["devices"] == 0:
        continue
    c = win["comparison"]
    lo, hi, target = 100 * c["newcombe"]["lo"], 100 * c["newcombe"]["hi"], tw[0]["target_lift_pp"]
    mark = "covers" if lo <= target <= hi else "MISSES"
    print(f"report {win['window_days']:>2} d{' (primary)' if win['primary'] else '          '}  lift {100 * c['difference']:+.2f} pp, 95 % [{lo:+.2f}, {hi:+.2f}]"
          f" {mark} the true device-level lift {target:+.2f} pp (n {c['exposed']['devices']}/{c['control']['devices']})")
print(f"report status          {report['status']}; {os.path.abspath(w + '/report/report.html')}")
# People, not device keys: person-hours per store over the city's weeks (15-min windows),
# estimated by the collector's occupancy stage (uncalibrated) against the simulator's truth
# (everyone inside; and those the store's sensors could see), beside device keys heard per
# window.
import collections, csv
true_all, true_seen = collections.Counter(), collections.Counter()
for r in csv.DictReader(open(f"{w}/city/truth/store_occupancy.csv")):
    true_all[r["store_id"]] += float(r["people"]) / 4
    true_seen[r["store_id"]] += float(r["people_seen"]) / 4
est, keys = collections.Counter(), collections.Counter()
for line in open(f"{w}/occupancy.tsv"):
    site, _, people = line.split("\t")
    est[site] += float(people) / 4
for line in open(f"{w}/keys.tsv"):
    site, _, n = line.split("\t")
    keys[site] += int(n) / 4
print("people per store, person-hours (occupancy stage, uncalibrated) vs the truth, beside device-key-hours:")
print(f"  {'store':<18} {'estimated':>10} {'true':>8} {'true, seen':>11} {'device keys':>12}")
for s in sorted(true_all):
    print(f"  {s:<18} {est[s]:>10.0f} {true_all[s]:>8.0f} {true_seen[s]:>11.0f} {keys[s]:>12.0f}")
# Store visitors per day: the traffic table (people; capture-corrected where the site has a
# capture rate) against the truth (customers arriving; and those a store sensor heard),
# beside the visits table's visitors (device keys).
true_days, seen_days = collections.Counter(), collections.Counter()
for r in csv.DictReader(open(f"{w}/city/truth/store_hours.csv")):
    true_days[(r["store_id"], r["hour"][:10])] += int(r["visitors"])
    seen_days[(r["store_id"], r["hour"][:10])] += int(r["visitors_seen"])
traffic, devices, capture = {}, collections.Counter(), {}
for line in open(f"{w}/traffic.tsv"):
    site, day, visitors, visitor_devices, _, rate = line.rstrip("\n").split("\t")
    traffic[(site, day)] = float(visitors)
    devices[(site, day)] = int(visitor_devices)
    capture[site] = float(rate)
visit_keys = collections.Counter()
for line in open(f"{w}/visit_keys.tsv"):
    site, day, n = line.rstrip("\n").split("\t")
    visit_keys[(site, day)] = int(n)
# "If heard exactly": the days an estimator would have within 10 % if it knew exactly which
# visitors the store's sensor heard, and divided by the capture rate; at a capture of 0.43
# and a hundred visitors a day, chance alone puts a third of the days outside.
print("store visitors per day (traffic table, people) vs the truth, beside device keys (visits table):")
print(f"  {'store':<18} {'capture':>8} {'estimated':>10} {'true':>7} {'error':>7} {'days within 10 %':>17} {'if heard exactly':>17} {'heard':>7} {'true, heard':>12} {'device keys':>12}")
close = lambda e, t: abs(e - t) <= 0.1 * t
for s in sorted({k[0] for k in true_days}):
    days = sorted(d for (x, d) in true_days if x == s)
    e, t = sum(traffic.get((s, d), 0) for d in days), sum(true_days[(s, d)] for d in days)
    within = sum(1 for d in days if close(traffic.get((s, d), 0), true_days[(s, d)]))
    exact = sum(1 for d in days if capture.get(s) and close(seen_days[(s, d)] / capture[s], true_days[(s, d)]))
    rate = f"{capture[s]:.2f}" if capture.get(s) else "none"
    print(f"  {s:<18} {rate:>8} {e:>10.0f} {t:>7} {100 * (e - t) / t:>+6.0f}% {within:>9} of {len(days):<4}"
          f" {exact:>9} of {len(days):<4} {sum(devices[(s, d)] for d in days):>7} {sum(seen_days[(s, d)] for d in days):>12}"
          f" {sum(visit_keys[(s, d)] for d in days):>12}")
print("ClickHouse " + open(f"{w}/tables.txt").read().replace("\t", " ").strip().replace("\n", "\n  "))
PY
echo "== files in $WORK: city/ (captures, inventory, ad_plays.csv, receipts.csv, truth/), agents/, received.txt, servers/ (clickhouse/, mosquitto/ with its log), collector.toml, collector.log, report/ (report.html, report.json, CSV tables, the dashboard's screenshots), dashboard/ (its configuration, users, stores.csv)"
# The main job ends by serving the dashboard over the demo city until Ctrl-C
# (DEMO_SERVE=0: stop here, for scripts).
if [ "${DEMO_SERVE:-1}" != 0 ]; then
  echo "== the dashboard over the demo city: $(cat "$WORK/dashboard/url")"
  echo "   user demo, password demo-password-1; Ctrl-C stops it and the servers"
  wait "$dashboard"
fi
