#!/usr/bin/env bash
# Builds footfall-agent for a 64-bit Raspberry Pi (aarch64-unknown-linux-gnu), runs the unit
# tests under qemu-user, and checks that the aarch64 binary's output for a real capture is
# byte-identical to the host build's. Installs (sudo when not root): gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user, libpcap0.8-dev:arm64 (multiarch), the rustup target.
# Note: do not set QEMU_LD_PREFIX to the cross toolchain's sysroot; mixing its libc with the
# multiarch libpcap makes the emulated agent spin. The multiarch loader needs no prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! dpkg-query -W -f='${Status}' libpcap0.8-dev:arm64 2>/dev/null | grep -q "install ok installed"; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libpcap0.8-dev:arm64 >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
T=aarch64-unknown-linux-gnu
# The pcap crate's library directory: the arm64 one for the cross build only.
ARM_PCAP=(env LIBPCAP_LIBDIR=/usr/lib/aarch64-linux-gnu)
"${ARM_PCAP[@]}" cargo test --locked --target $T -p wire -p firmware-config -p sensor-agent --lib
"${ARM_PCAP[@]}" cargo build --locked --release --target $T -p sensor-agent --bins
cargo build --locked --release -p sensor-agent --bins

W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
head -c 32 /dev/urandom | base64 > "$W/key" && chmod 600 "$W/key"
printf 'version = 1\n[capture]\nrssi_floor_dbm = -128\nfcs_policy = "trust-flag"\n[identity]\nsecret_file = "key"\n[spool]\ndir = "spool"\n' > "$W/agent.toml"
PCAP=${FOOTFALL_TESTDATA:-../shared/testdata/pcaps}/fryza/position_2_2024-02-08.pcap
qemu-aarch64 target/$T/release/footfall-agent --log warn replay --config "$W/agent.toml" \
  --pcap "$PCAP" --out "$W/arm.jsonl" --summary "$W/arm.json"
target/release/footfall-agent --log warn replay --config "$W/agent.toml" \
  --pcap "$PCAP" --out "$W/host.jsonl" --summary "$W/host.json"
cmp "$W/arm.jsonl" "$W/host.jsonl" && cmp "$W/arm.json" "$W/host.json"
echo "cross: aarch64 build passes its unit tests under qemu and matches the host byte for byte"
