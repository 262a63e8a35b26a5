#!/usr/bin/env bash
# Agent figures for benches/README.md, each beside a baseline measured in the same run:
#  1. replay throughput (libpcap read + parse + hash + sessionize + batch + JSON to /dev/null,
#     one thread) over the Fryza capture repeated to >= 1 M frames, vs `tcpdump -r F -w /dev/null`
#  2. peak RSS with 100 k devices tracked at once (global addresses; and randomized ones,
#     a new address per burst, which the linker chains), vs the same binary on an empty capture
# Usage: bash benches/agent.sh   (after `cargo build --release -p sensor-agent -p benches --bins --examples`)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p sensor-agent -p benches --bins --examples
BIN=target/release
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
PCAPS=${FOOTFALL_TESTDATA:-../shared/testdata/pcaps}

"$BIN/repeat-pcap" "$PCAPS/fryza/position_1_2022-11-15.pcap" "$W/fryza-1M.pcap" 48
frames=$((21257 * 48))
head -c 32 /dev/urandom | base64 > "$W/key" && chmod 600 "$W/key"
cat > "$W/agent.toml" <<CONF
version = 1
[capture]
rssi_floor_dbm = -128
fcs_policy = "trust-flag"
[identity]
secret_file = "key"
[spool]
dir = "spool"
CONF

best() { # best wall time of 5 runs, in seconds
  local b=999999
  for _ in 1 2 3 4 5; do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    b=$(python3 -c "print(min($b, $t1 - $t0))")
  done
  echo "$b"
}
cat "$W/fryza-1M.pcap" > /dev/null  # warm the page cache
t_tcpdump=$(best tcpdump -r "$W/fryza-1M.pcap" -w /dev/null)
t_agent=$(best "$BIN/footfall-agent" --log error replay --config "$W/agent.toml" --pcap "$W/fryza-1M.pcap" --out /dev/null)
python3 - "$frames" "$t_tcpdump" "$t_agent" <<'PY'
import sys
n, td, ta = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"replay {n} frames: tcpdump -r {td:.3f} s ({n/td/1e6:.2f} M frames/s), "
      f"footfall-agent replay {ta:.3f} s ({n/ta/1e6:.2f} M frames/s), ratio {td/ta:.2f} of tcpdump")
PY

"$BIN/examples/synth_capture" --out "$W/100k.pcap" --devices 100000 --minutes 1 --global-share 1 --seed 3 2>/dev/null
"$BIN/examples/synth_capture" --out "$W/100k-random.pcap" --devices 100000 --minutes 1 --global-share 0 --seed 3 2>/dev/null
"$BIN/examples/synth_capture" --out "$W/empty.pcap" --devices 0 --minutes 1 2>/dev/null
rss() { /usr/bin/time -f %M "$BIN/footfall-agent" --log error replay --config "$W/agent.toml" --pcap "$1" --out /dev/null 2>&1 >/dev/null | tail -1; }
r_empty=$(rss "$W/empty.pcap")
r_100k=$(rss "$W/100k.pcap")
r_random=$(rss "$W/100k-random.pcap")
python3 - "$r_empty" "$r_100k" "$r_random" <<'PY'
import sys
e, f, r = (int(a) for a in sys.argv[1:])
print(f"peak RSS: empty capture {e/1024:.2f} MiB; 100 k devices tracked: global {f/1024:.2f} MiB "
      f"(+{(f-e)/1024:.1f} MiB, {(f-e)*1024/100000:.0f} bytes per device), randomized and linked "
      f"{r/1024:.2f} MiB (+{(r-e)/1024:.1f} MiB, {(r-e)*1024/100000:.0f} bytes per device)")
PY
