#!/usr/bin/env bash
# Time and peak memory of the simulator generating the `city` preset in fast mode (the input
# of the collector's scale tests), with its output's size and rate.
# Usage: bash benches/sim.sh [OUT_DIR]   (needs ~25 GB free; OUT_DIR defaults to a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p simulator --bins
OUT=${1:-$(mktemp -d)/city}
rm -rf "$OUT"
/usr/bin/time -f '%e s wall, %U s user, %M KiB peak RSS' -o "$OUT.time" \
  target/release/footfall-sim generate --preset city --seed 1 --quiet --out "$OUT"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
t = open(out + ".time").read().split()
wall, rss_kib = float(t[0]), int(t[6])
s = json.load(open(f"{out}/truth/summary.json"))
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
print(f"city: {s['people']} people, {s['devices']} devices, {s['sensors']} sensors, {s['days']} days")
print(f"sightings {s['sightings']:,} in {s['envelopes']:,} envelopes; probe requests {s['probe_requests']:,}")
print(f"wall {wall:.0f} s ({open(out + '.time').read().strip()})")
print(f"rate {s['sightings'] / wall:,.0f} sightings/s; peak RSS {rss_kib / 1024:,.0f} MiB; output {size / 2**30:.1f} GiB")
PY
