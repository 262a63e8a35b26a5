# Shell helpers for running the servers as user processes (sourced by deploy/demo.sh and the
# benches' scripts; the Rust tests have the same in testkit).

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_clickhouse DIR HTTP_PORT TCP_PORT: Debian's ClickHouse with its data in DIR, in the
# background (its pid in CLICKHOUSE_PID); returns once it answers.
start_clickhouse() {
  local d=$1 http=$2 tcp=$3
  mkdir -p "$d"
  cat > "$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex><logger><level>warning</level><log>$d/server.log</log><errorlog>$d/error.log</errorlog></logger>
<http_port>$http</http_port><tcp_port>$tcp</tcp_port><listen_host>127.0.0.1</listen_host>
<path>$d/data/</path><tmp_path>$d/tmp/</tmp_path><user_files_path>$d/uf/</user_files_path>
<format_schema_path>$d/fs/</format_schema_path><users_config>$d/users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database>
<mark_cache_size>268435456</mark_cache_size></yandex>
XML
  cat > "$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex><profiles><default/></profiles><users><default><password></password>
<networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default/></quotas></yandex>
XML
  /usr/sbin/clickhouse-server --config-file="$d/config.xml" >/dev/null 2>&1 &
  CLICKHOUSE_PID=$!
  for _ in $(seq 300); do
    clickhouse-client --port "$tcp" -q 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "ClickHouse did not start; see $d/error.log" >&2
  return 1
}

# publish_city CITY PORT: every sensor's envelopes of a simulated city (fast mode) to the
# broker on PORT with mosquitto_pub, QoS 1, one process per sensor, in parallel.
publish_city() {
  local city=$1 port=$2 ps=() sensor site
  while IFS=, read -r sensor site _; do
    mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "footfall/v1/$site/$sensor/sightings" -l \
      < "$city/envelopes/$sensor.jsonl" & ps+=($!)
  done < <(tail -n +2 "$city/inventory/sensors.csv")
  wait "${ps[@]}"
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

# start_mosquitto DIR PORT [LOG_TYPES]: a broker on 127.0.0.1:PORT in the background (its pid
# in MOSQUITTO_PID), configured as the collector needs (deploy/mosquitto/footfall.conf: any
# number of messages in flight and queued, 16 MiB messages), logging LOG_TYPES (default
# error and warning) to DIR/mosquitto.log; returns once it listens.
start_mosquitto() {
  local d=$1 port=$2 log=${3:-error warning} t
  mkdir -p "$d"
  {
    echo "listener $port 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence false"
    echo "max_inflight_messages 0"
    echo "max_queued_messages 0"
    echo "message_size_limit 16777216"
    echo "log_dest file $d/mosquitto.log"
    for t in $log; do echo "log_type $t"; done
    if [ "$(id -u)" -eq 0 ]; then echo "user root"; fi
  } > "$d/mosquitto.conf"
  mosquitto -c "$d/mosquitto.conf" >/dev/null 2>&1 &
  MOSQUITTO_PID=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "Mosquitto did not start; see $d/mosquitto.log" >&2
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
