#!/usr/bin/env bash
# People counting on the Fryza lab days (benches/README.md, "People counting"): each day's
# capture replayed by footfall-agent (the ci profile: optimized, and the build make test
# already has) to OUT/NAME.jsonl, then the counting bench
# program (benches/benches/counting.rs) scores the collector's estimator against the labels,
# beside the baselines; the Pintor captures (one labelled phone each) overlaid into one room,
# for how well the agent's links group one phone's addresses. Writes OUT/summary.txt.
# Usage: bash benches/counting.sh [OUT]   (default target/counting)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-target/counting}")
DATA=${FOOTFALL_TESTDATA:-../shared/testdata/pcaps}
cargo build --profile ci --locked -q --workspace --bins
mkdir -p "$OUT"
printf 'counting-bench-tenant-secret-0123456789' > "$OUT/tenant.key" && chmod 600 "$OUT/tenant.key"
cat > "$OUT/agent.toml" <<CONF
version = 1
[sensor]
id = "lab"
site = "lab"
site_kind = "store"
[identity]
secret_file = "$OUT/tenant.key"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "counting"
[spool]
dir = "$OUT/spool"
CONF
for pcap in "$DATA"/fryza/*.pcap; do
  target/ci/footfall-agent --log warn replay --config "$OUT/agent.toml" --pcap "$pcap" \
    --out "$OUT/$(basename "$pcap" .pcap).jsonl"
done
# Pintor: every labelled phone in the room at once (overlay-pcap shifts each phone's
# captures to one start), and each phone alone with the same shift, for its device keys.
rm -rf "$OUT/pintor" && mkdir -p "$OUT/pintor"
target/ci/overlay-pcap "$OUT/pintor" "$DATA"/pintor/*.pcap
for pcap in "$OUT"/pintor/*.pcap; do
  target/ci/footfall-agent --log error replay --config "$OUT/agent.toml" --pcap "$pcap" \
    --out "${pcap%.pcap}.jsonl" 2>/dev/null
done
cargo bench --profile ci --locked -q --workspace --bench counting -- "$OUT"
