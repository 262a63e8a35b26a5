#!/usr/bin/env bash
# The fault suite at the durations of a real incident (benches/README.md, "Outages"): the
# tests in sensor-agent/tests/it/outages.rs, which `make test` runs with outages of seconds,
# here with the broker down 10 min, ClickHouse down 10 min and the collector down 30 min
# (FOOTFALL_OUTAGES=full). The three tests run side by side; the longest takes about 45 min.
# Each prints the agents' summary lines; a test fails if a sighting is missing or doubled.
# Usage: bash benches/outages.sh [OUT]   (default target/outages; the log is OUT/outages.log)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-target/outages}")
mkdir -p "$OUT"
# The workspace's binaries: the tests run the collector's beside the agent's.
cargo build --profile ci --locked -q --workspace --bins
started=$(date +%s)
FOOTFALL_OUTAGES=full cargo test --profile ci --locked -p sensor-agent --test it outages \
  -- --test-threads 3 --nocapture 2>&1 | tee "$OUT/outages.log"
echo "outages (full durations): $(( $(date +%s) - started )) s" | tee -a "$OUT/outages.log"
