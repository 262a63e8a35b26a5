-- Footfall schema, version 8: each sensor's latest status, kept from `sensor_status` by a
-- materialized view, so the fleet's page reads a row per sensor (and per unmerged part)
-- instead of a month of minutely heartbeats (3 s for 1,180 sensors on one server; the
-- dashboard bench). ReplacingMergeTree(at_ms): merges keep each sensor's latest status;
-- readers take argMax by at_ms, which is right before merges too. The view names its
-- columns: a migration that adds one to `sensor_status` adds it to both and re-creates the
-- view. Rows already in `sensor_status` are copied once (again if the migration is cut short:
-- the same rows, harmless).
CREATE TABLE IF NOT EXISTS sensor_latest AS sensor_status
ENGINE = ReplacingMergeTree(at_ms)
ORDER BY sensor;

CREATE MATERIALIZED VIEW IF NOT EXISTS sensor_latest_mv TO sensor_latest AS
SELECT sensor, day, at_ms, site, online, uptime_secs, frames_captured, frames_dropped,
    frames_malformed, spool_batches, spool_bytes, spool_dropped_batches, config_version,
    clock_synced, received_ms
FROM sensor_status;

INSERT INTO sensor_latest SELECT * FROM sensor_status
