# Shell helpers for running the servers as user processes (sourced by deploy/demo.sh and the
# benches' scripts).

# The servers and tools come from `footfall-local` (testkit's binary): the same code, and so
# the same configuration, as the Rust tests. Build it first (`cargo build --release -p testkit`).
LOCAL=${LOCAL:-target/release/footfall-local}

# A free TCP port on 127.0.0.1.
free_port() {
  "$LOCAL" free-port
}

# start_servers DIR [--mosquitto quiet|all [--shipped-limits]] [--clickhouse]: the servers in the background
# (footfall-local's pid in SERVERS_PID: kill it with TERM to stop them gracefully), their
# files under DIR; returns once they answer, with DIR/servers.env sourced: MOSQUITTO_PORT,
# MOSQUITTO_PID, MOSQUITTO_LOG, CLICKHOUSE_HTTP_PORT, CLICKHOUSE_TCP_PORT, CLICKHOUSE_PID.
start_servers() {
  local d=$1
  shift
  mkdir -p "$d"
  "$LOCAL" servers --dir "$d" "$@" > "$d/footfall-local.log" 2>&1 &
  SERVERS_PID=$!
  for _ in $(seq 600); do
    if grep -qx "READY=1" "$d/servers.env" 2>/dev/null; then
      . "$d/servers.env"
      return 0
    fi
    if ! kill -0 "$SERVERS_PID" 2>/dev/null; then
      echo "footfall-local servers $* failed:" >&2
      cat "$d/footfall-local.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "footfall-local servers $* did not start within 60 s; see $d" >&2
  return 1
}

# rows_written METRICS_PORT TABLE: the rows the collector serving metrics on METRICS_PORT has
# committed to TABLE (empty before its first).
rows_written() {
  curl -s "127.0.0.1:$1/metrics" | awk -v t="$2" '$1 == "footfall_rows_written_total{table=\"" t "\"}" {print $2}'
}

# wait_subscribed METRICS_PORT: returns once the collector serving metrics on METRICS_PORT has
# its subscriptions in place (fails after 30 s).
wait_subscribed() {
  local t
  for t in $(seq 300); do
    curl -s "127.0.0.1:$1/metrics" 2>/dev/null | grep -qx "footfall_mqtt_subscribed 1" && return 0
    sleep 0.1
  done
  echo "the collector did not subscribe within 30 s" >&2
  return 1
}

# cpu_secs PID: CPU seconds (user + system) the process has used so far.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

# busy_secs: CPU seconds every core of the machine has spent busy so far.
busy_secs() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}
