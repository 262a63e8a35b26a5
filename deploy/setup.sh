#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian machine:
#   mosquitto, mosquitto-clients  the MQTT broker and its reference clients (tests, demo), at
#                                 least 2.0.13: on Debian 12 from bookworm-backports (2.0.21),
#                                 as bookworm's own 2.0.11 loses count of a subscriber's
#                                 messages in flight (README, "The broker")
#   libpcap-dev, pkg-config       libpcap for the agent's capture
#   tshark                        an independent 802.11 dissector: the parser's test oracle
#   tcpdump, time                 baselines and peak-RSS measurement for the benchmarks
#   python3, openssl              the demo's summary; throwaway TLS certificates in tests
#   build-essential, ca-certificates, curl  C toolchain for -sys crates; rustup bootstrap
#   clickhouse-server, clickhouse-client    ClickHouse 18.16 (tests start their own servers)
#   python3-venv                  a Python environment for chdb-core (ClickHouse 26.x in-process),
#                                 which proves the schema and queries on a current release
#   chromium, chromium-driver     a real browser for the dashboard's end-to-end tests (WebDriver)
#   systemd                       systemd-analyze, which scores the shipped units' sandboxes
#   zookeeper                     ZooKeeper 3.8 for the ClickHouse cluster test (replicated tables,
#                                 ON CLUSTER DDL); tests start their own on free ports
# and, if cargo is missing, a Rust toolchain through rustup; rustfmt and clippy components.
# Uses sudo when not root. Idempotent: installs only what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Mosquitto before 2.0.13 lets a subscriber's messages in flight grow past every limit and
# walks them on each acknowledgement; Debian 12's own is 2.0.11, its backports have 2.0.21.
MOSQUITTO_MIN=2.0.13
mosquitto=(mosquitto mosquitto-clients libmosquitto1)
mosquitto_ok() {
  local v
  for pkg in "${mosquitto[@]}"; do
    v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || return 1
    dpkg --compare-versions "$v" ge "$MOSQUITTO_MIN" || return 1
  done
}
. /etc/os-release
need=()
for pkg in systemd libpcap-dev pkg-config tshark tcpdump time python3 python3-venv openssl build-essential ca-certificates curl clickhouse-server clickhouse-client chromium chromium-driver zookeeper; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  # tshark asks whether non-root users may capture; answer no, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! mosquitto_ok; then
  targets=("${mosquitto[@]}")
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "setup: enabling bookworm-backports (for Mosquitto >= $MOSQUITTO_MIN)"
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    fi
    targets=("${mosquitto[@]/%//bookworm-backports}")
  fi
  echo "setup: installing ${targets[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${targets[@]}" >/dev/null
  mosquitto_ok || { echo "setup: Mosquitto >= $MOSQUITTO_MIN is needed, found $(dpkg-query -W -f='${Version}' mosquitto)" >&2; exit 1; }
fi
# The Debian packages start a system-wide broker and ClickHouse where systemd runs; tests
# start their own on free ports.

# chdb-core, pinned, in its own environment (Debian's Python refuses system-wide pip).
PYENV="${FOOTFALL_PYENV:-$HOME/.cache/footfall/py}"
if ! "$PYENV/bin/python" -c "import chdb" >/dev/null 2>&1; then
  echo "setup: installing chdb-core into $PYENV"
  python3 -m venv "$PYENV"
  "$PYENV/bin/pip" install -q --disable-pip-version-check "chdb-core==26.9.0"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing a Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
echo "setup: ok ($(cargo --version))"
