#!/usr/bin/env bash
# Agent figures for benches/README.md, each beside a baseline measured in the same run:
#  1. replay throughput of the whole binary (libpcap read on one thread; parse + hash + link +
#     sessionize + batch + encode, JSON or binary, to /dev/null on another) over the Fryza
#     capture repeated to >= 1 M frames, vs `tcpdump -r F -w /dev/null`; and CPU time
#  2. peak RSS with 100 k devices tracked at once (global addresses; and randomized ones,
#     a new address per burst, which the linker chains), vs the same binary on an empty capture
# Usage: bash benches/agent.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The agent is built last and alone, as deploy/cross.sh builds it for the sensors: built with
# the benches or its examples, cargo would unify their dependencies' features into it (a
# larger binary, 1.3 MB more, and more of it mapped).
cargo build --release --locked -q -p benches --bins
cargo build --release --locked -q -p sensor-agent --examples
cargo build --release --locked -q -p sensor-agent --bins
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
replay=("$BIN/footfall-agent" --log error replay --config "$W/agent.toml" --pcap "$W/fryza-1M.pcap" --out /dev/null)
t_json=$(best "${replay[@]}" --encoding json)
t_binary=$(best "${replay[@]}" --encoding binary)
# CPU time in ms (user + system, both threads: libpcap's reading and the pipeline), mean of 5
cpu() {
  for _ in 1 2 3 4 5; do /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1; done |
    awk '{ s += $1 + $2 } END { print s / NR * 1000 }'
}
c_tcpdump=$(cpu tcpdump -r "$W/fryza-1M.pcap" -w /dev/null)
c_binary=$(cpu "${replay[@]}" --encoding binary)
python3 - "$frames" "$t_tcpdump" "$t_json" "$t_binary" "$c_tcpdump" "$c_binary" <<'PY'
import sys
n = int(sys.argv[1])
td, tj, tb, ctd, cb = (float(a) for a in sys.argv[2:])
print(f"replay {n} frames (best wall time of 5): tcpdump -r {td:.3f} s ({n/td/1e6:.2f} M frames/s)")
for name, t in (("JSON", tj), ("binary", tb)):
    print(f"  footfall-agent replay, {name} envelopes: {t:.3f} s ({n/t/1e6:.2f} M frames/s), "
          f"ratio {td/t:.2f} of tcpdump")
print(f"CPU time (mean of 5): tcpdump {ctd:.0f} ms, footfall-agent replay (binary) {cb:.0f} ms")
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
