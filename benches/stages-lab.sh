#!/usr/bin/env bash
# The collector's stream stages (benches/benches/stages.rs) on real captures, where the
# city's simulated sightings have no interim updates and no sighting longer than a few
# minutes: the Fryza lab's days as the agent replays them (`benches/counting.sh` writes
# them to its OUT), each day made into REPLICAS sites of one sensor, every day moved to the
# first day's date (times of day kept), published as `publish-city prepare` encodes them.
# Prints the stages' time per sighting and the digest of the rows they leave.
# Usage: bash benches/stages-lab.sh COUNTING_OUT [REPLICAS [DIR]]   (default 40 replicas,
# DIR target/stages-lab). STAGES=BINARY runs a stages bench binary kept from another commit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash benches/stages-lab.sh COUNTING_OUT [REPLICAS [DIR]]" >&2; exit 2; }
IN=$(realpath "$1")
REPLICAS=${2:-40}
DIR=$(realpath -m "${3:-target/stages-lab}")
ls "$IN"/position_*.jsonl > /dev/null
cargo build --release --locked -q -p benches --bin publish-city
rm -rf "$DIR" && mkdir -p "$DIR/envelopes" "$DIR/inventory"
python3 - "$IN" "$DIR" "$REPLICAS" <<'PY'
import datetime, glob, json, sys
src, out, replicas = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ms(t):
    return round(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
def rfc3339(m):
    t = datetime.datetime.fromtimestamp(m // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (m % 1000)
days = sorted(glob.glob(f"{src}/position_*.jsonl"))
day = lambda envs: ms(envs[0]["sent_at"]) // 86_400_000 * 86_400_000
base = None
with open(f"{out}/inventory/sites.csv", "w") as sites, open(f"{out}/inventory/sensors.csv", "w") as sensors:
    sites.write("site_id,kind,brand,lat,lon,open_hour,close_hour,rssi_threshold_dbm,min_dwell_secs\n")
    sensors.write("sensor_id,site_id,kind,lat,lon\n")
    for k, path in enumerate(days):
        envs = [json.loads(line) for line in open(path)]
        base = day(envs) if base is None else base
        shift = base - day(envs)
        for r in range(replicas):
            site = f"lab{k:02d}-{r:03d}"
            sites.write(f"{site},store,lab,50.1,14.4,0,24,-75,180\n")
            sensors.write(f"{site}-s1,{site},store,50.1,14.4\n")
            with open(f"{out}/envelopes/{site}-s1.jsonl", "w") as f:
                for e in envs:
                    e = dict(e, site=site, sensor=f"{site}-s1", sent_at=rfc3339(ms(e["sent_at"]) + shift))
                    e["sightings"] = [
                        dict(s, first_seen=rfc3339(ms(s["first_seen"]) + shift),
                             last_seen=rfc3339(ms(s["last_seen"]) + shift))
                        for s in e["sightings"]
                    ]
                    f.write(json.dumps(e, separators=(",", ":")) + "\n")
print(f"{len(days)} days x {replicas} sites")
PY
target/release/publish-city prepare "$DIR" "$DIR/msgs" binary
if [ -n "${STAGES:-}" ]; then
  (cd benches && "$STAGES" "$DIR/msgs" "$DIR/inventory" 2)
else
  cargo bench --profile ci --locked -q -p benches --bench stages -- "$DIR/msgs" "$DIR/inventory" 2
fi
