-- Footfall schema, version 1. Applied by `footfall-collector migrate` (and at start), in the
-- configured database, statement by statement; every statement is idempotent.
-- Portable SQL: runs on Debian's ClickHouse 18.16 and on current releases (a test runs it
-- on both). No DateTime64 (times are Int64 milliseconds since the epoch, UTC), no
-- LowCardinality (18.16 refuses it), de-duplication by design: ReplacingMergeTree, whose
-- sorting key is the identity of a row, read with FINAL or argMax.
-- Partitions are months of the row's event day: a few hundred partitions over years, each
-- large; re-delivered rows carry the same day, so they land in the partition of their twin
-- (ReplacingMergeTree only replaces within a partition).

-- Fleet inventory. Small; the latest import wins (version = import time).
CREATE TABLE IF NOT EXISTS sites (
    site_id String,
    kind Enum8('store' = 1, 'billboard' = 2),
    brand String,
    lat Float64,
    lon Float64,
    open_hour UInt8,
    close_hour UInt8,
    rssi_threshold_dbm Int8,
    min_dwell_secs UInt32,
    imported_ms Int64
) ENGINE = ReplacingMergeTree(imported_ms)
ORDER BY site_id;

CREATE TABLE IF NOT EXISTS sensors (
    sensor_id String,
    site_id String,
    kind Enum8('store' = 1, 'billboard' = 2),
    lat Float64,
    lon Float64,
    imported_ms Int64
) ENGINE = ReplacingMergeTree(imported_ms)
ORDER BY sensor_id;

-- Sightings as the sensors published them. Identity: (sensor, seq, idx) = the envelope's
-- de-duplication key and the sighting's index in it; QoS 1 redeliveries and spool replays
-- collapse onto it. Sorted by site and day first: dashboards and the attribution read one
-- site (or the campaign's boards) over a date range.
CREATE TABLE IF NOT EXISTS sightings (
    site String,
    day Date,
    sensor String,
    seq UInt64,
    idx UInt16,
    epoch UInt32,
    device UInt64,
    class Enum8('global' = 0, 'local' = 1),
    fingerprint UInt32,
    first_ms Int64,
    last_ms Int64,
    frames UInt32,
    rssi_max Int8,
    rssi_mean Float32,
    final UInt8,
    sent_ms Int64,
    received_ms Int64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, sensor, seq, idx);

-- Site visits: a site's sensors' sightings of one device merged into stays and classified.
-- The stream stage owns a visit's identity (visit_id) and writes a new version when late
-- data changes it; a retracted visit is written with retracted = 1. Read with FINAL (or
-- argMax(..., version)) and retracted = 0.
CREATE TABLE IF NOT EXISTS visits (
    site String,
    day Date,
    device UInt64,
    visit_id UInt64,
    epoch UInt32,
    class Enum8('global' = 0, 'local' = 1),
    fingerprint UInt32,
    first_ms Int64,
    last_ms Int64,
    dwell_secs UInt32,
    rssi_max Int8,
    sightings UInt32,
    kind Enum8('passer_by' = 1, 'visitor' = 2),
    retracted UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, device, visit_id);

-- Proof of play. Identity: (board, start). The attribution joins passes at a board with
-- the plays around them: sorted by board and time.
CREATE TABLE IF NOT EXISTS ad_plays (
    board_id String,
    day Date,
    start_ms Int64,
    end_ms Int64,
    creative_id String,
    brand String,
    campaign_id String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (board_id, day, start_ms);

CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id String,
    brand String,
    creative_id String,
    boards Array(String),
    start_ms Int64,
    end_ms Int64,
    spend Float64,
    currency String,
    window_days UInt16,
    slot_secs UInt16,
    loop_slots UInt16,
    slots_per_loop UInt16,
    imported_ms Int64
) ENGINE = ReplacingMergeTree(imported_ms)
ORDER BY campaign_id;

-- Receipts. Identity: (store, receipt id); amounts in cents. Store dashboards read one
-- store over days; the attribution sums a loyalty id's receipts in a window.
CREATE TABLE IF NOT EXISTS receipts (
    store_id String,
    day Date,
    receipt_id String,
    at_ms Int64,
    amount_cents Int64,
    currency String,
    loyalty_id String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (store_id, day, receipt_id);

-- Device-loyalty links by consent, per hashing epoch.
CREATE TABLE IF NOT EXISTS links (
    epoch UInt32,
    device UInt64,
    loyalty_id String,
    imported_ms Int64
) ENGINE = ReplacingMergeTree(imported_ms)
ORDER BY (epoch, device, loyalty_id);

-- Sensor heartbeats and Last Wills. Identity: (sensor, at).
CREATE TABLE IF NOT EXISTS sensor_status (
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
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (sensor, day, at_ms);

-- Messages the collector refused, with the reason and the payload (truncated). Identity:
-- (reason, topic, payload hash), so a redelivered bad message is counted once.
CREATE TABLE IF NOT EXISTS rejected (
    day Date,
    reason String,
    topic String,
    payload_hash UInt64,
    received_ms Int64,
    detail String,
    payload String,
    payload_bytes UInt32
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (reason, topic, payload_hash);
