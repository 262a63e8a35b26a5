-- Footfall schema, version 3: people per site and window, from the stream stage's counting
-- estimator (collector/src/counting.rs). One row per (site, window length, window start);
-- late data writes a new version of the window (the latest wins: read with FINAL).
-- `people`, `lo`, `hi`: the estimate and its 95 % interval; `global_devices`,
-- `randomized_devices`: the devices in the room, means over the window (randomized ones
-- counted once per probe fingerprint); `fixtures`: devices heard all day, counted apart;
-- `estimator`: its name and version; `calibrated`: 1 if the site's calibration was used.
CREATE TABLE IF NOT EXISTS occupancy (
    site String,
    day Date,
    window_mins UInt16,
    start_ms Int64,
    people Float64,
    lo Float64,
    hi Float64,
    global_devices Float64,
    randomized_devices Float64,
    fixtures UInt32,
    estimator String,
    calibrated UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, window_mins, day, start_ms);
