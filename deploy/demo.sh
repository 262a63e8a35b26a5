#!/usr/bin/env bash
# The main job, as far as it is built: a synthetic capture made here -> footfall-agent ->
# a real local Mosquitto -> an independent subscriber, with a readable summary.
# Everything runs as user processes in target/demo; the broker is stopped afterwards.
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

echo "== 1. a synthetic capture: phones near a store sensor for two hours"
"$BIN/examples/synth_capture" --out "$WORK/store.pcap" --devices 400 --minutes 120 --seed 7

echo "== 2. a sensor: tenant secret (0600), configuration"
head -c 32 /dev/urandom | base64 > "$WORK/tenant.key" && chmod 600 "$WORK/tenant.key"
cat > "$WORK/agent.toml" <<CONF
version = 1
[sensor]
id = "demo-sensor-1"
site = "store-001"
site_kind = "store"
[capture]
rssi_floor_dbm = -85
[identity]
secret_file = "tenant.key"
[mqtt]
url = "mqtt://127.0.0.1:$port"
[spool]
dir = "spool"
CONF
"$BIN/footfall-agent" check-config "$WORK/agent.toml"

echo "== 3. replay through Mosquitto on port $port (mosquitto_sub listening)"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'footfall/v1/+/+/sightings' -q 1 > "$WORK/received.jsonl" &
sub=$!
for _ in $(seq 100); do grep -q "SUBSCRIBE from" "$WORK/mosquitto.log" 2>/dev/null && break; sleep 0.1; done
"$BIN/footfall-agent" --log warn replay --config "$WORK/agent.toml" --pcap "$WORK/store.pcap" \
  --summary "$WORK/summary.json"
sleep 0.5

echo "== 4. summary"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
s = json.load(open(f"{w}/summary.json"))
received = [json.loads(l) for l in open(f"{w}/received.jsonl") if l.strip()]
sightings = [g for e in received for g in e["sightings"]]
seqs = sorted(e["seq"] for e in received)
print(f"frames captured        {s['frames']:>8}")
print(f"probe requests         {s['probe_requests']:>8}")
print(f"malformed frames       {sum(s['malformed'].values()):>8}")
print(f"dropped by policy      {sum(s['dropped'].values()):>8}   {s['dropped']}")
print(f"distinct device keys   {sum(s['devices'].values()):>8}   global {s['devices']['global']}, local (randomized) {s['devices']['local']}")
print(f"sightings              {s['sightings']:>8}   (+{s['interim_updates']} interim updates)")
print(f"batches published      {s['batches']:>8}")
if not received:
    sys.exit("demo: mosquitto_sub received nothing")
print(f"batches received       {len(received):>8}   seq {seqs[0]}..{seqs[-1]}, by mosquitto_sub")
print(f"sightings received     {len(sightings):>8}")
g = sightings[0]
print(f"a sighting on the wire: {json.dumps(g)}")
PY
echo "== files in $WORK: store.pcap, agent.toml, summary.json, received.jsonl, mosquitto.log"
