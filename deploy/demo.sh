#!/usr/bin/env bash
# The main job, as far as it is built: a simulated city (the `demo` preset: a week's flight
# on eight boards, six stores) -> its captures replayed through one footfall-agent per
# sensor -> a real local Mosquitto -> an independent subscriber, checked against the
# simulator's truth. Everything runs as user processes in target/demo; the broker is stopped
# afterwards. (Collector, ClickHouse and the attribution report join in issues 4 and 5.)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
WORK=target/demo
rm -rf "$WORK" && mkdir -p "$WORK"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $PWD/$WORK/mosquitto.log
log_type all
$( [ "$(id -u)" -eq 0 ] && echo "user root" )
CONF
mosquitto -c "$WORK/mosquitto.conf" >/dev/null 2>&1 &
broker=$!
sub=""
cleanup() { [ -n "$sub" ] && kill "$sub" 2>/dev/null; kill "$broker" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

echo "== 1. simulate the demo city (seed 1)"
"$BIN/footfall-sim" generate --preset demo --seed 1 --out "$WORK/city"

echo "== 2. one sensor agent per sensor, replaying its capture through Mosquitto on port $port"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'footfall/v1/+/+/sightings' -q 1 -i demo-sub -v \
  > "$WORK/received.txt" &
sub=$!
for _ in $(seq 100); do grep -q "SUBSCRIBE from" "$WORK/mosquitto.log" 2>/dev/null && break; sleep 0.1; done
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
sleep 1

echo "== 3. summary"
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
PY
echo "== files in $WORK: city/ (captures, inventory, ad_plays.csv, receipts.csv, truth/), agents/, received.txt, mosquitto.log"
