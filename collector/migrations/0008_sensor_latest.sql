-- Footfall schema, version 8: each sensor's latest status, kept from `sensor_status` by a
-- materialized view, so the fleet's page reads a row per sensor (and per unmerged part)
-- instead of a month of minutely heartbeats (3 s for 1,180 sensors on one server; the
-- dashboard bench). ReplacingMergeTree(at_ms): merges keep each sensor's latest status;
-- readers take argMax by at_ms, which is right before merges too. Rows already in
-- `sensor_status` are copied once (again if the migration is cut short: the same rows).
CREATE TABLE IF NOT EXISTS sensor_latest (
    sensor String,
    day Date,
    at_ms Int64,
    site String,
    online UInt8,
    uptime_secs UInt64,
    frames_captured UInt64,
    frames_dropped UInt64,
    frames_malformed UInt64,
    spool_batches UInt64,
    spool_bytes UInt64,
    spool_dropped_batches UInt64,
    config_version UInt32,
    clock_synced UInt8,
    received_ms Int64
) ENGINE = ReplacingMergeTree(at_ms)
ORDER BY sensor;

CREATE MATERIALIZED VIEW IF NOT EXISTS sensor_latest_mv TO sensor_latest AS
SELECT sensor, day, at_ms, site, online, uptime_secs, frames_captured, frames_dropped,
    frames_malformed, spool_batches, spool_bytes, spool_dropped_batches, config_version,
    clock_synced, received_ms
FROM sensor_status;

INSERT INTO sensor_latest
SELECT sensor, day, at_ms, site, online, uptime_secs, frames_captured, frames_dropped,
    frames_malformed, spool_batches, spool_bytes, spool_dropped_batches, config_version,
    clock_synced, received_ms
FROM sensor_status
