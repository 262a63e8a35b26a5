-- Footfall schema, version 7: store traffic per site and local hour, from the stream stage
-- (collector/src/traffic.rs), beside the occupancy it is computed with. One row per (site,
-- hour); late data writes a new version (the latest wins: read with FINAL).
-- `day`, `local_hour`: the hour's date and hour on the site's clocks (its `tz`); `hour_ms`:
-- the hour's start, UTC ms. A stay (one device's sightings at the site, apart by at most the
-- site kind's gap) counts in the hour it starts in, as a visitor if it meets the site's
-- visit rule (opening hours, dwell, signal), else as a passer-by; fixtures are counted apart.
-- `visitors`, `passers_by`: people, = devices x the calibration's people per device, divided
-- by `capture_rate` when the site has one (else `capture_rate` is 0: not corrected);
-- `visitor_devices`, `passer_by_devices`: the stays counted (one device, one count: links
-- joined); `addresses`: distinct device keys whose sightings start in the hour (what a count
-- of MAC addresses would say); `unlinked_devices`: stays from sightings without a link;
-- `dwell_*`: visitor stays by dwell, minutes.
CREATE TABLE IF NOT EXISTS traffic (
    site String,
    day Date,
    local_hour UInt8,
    hour_ms Int64,
    visitors Float64,
    passers_by Float64,
    visitor_devices UInt32,
    passer_by_devices UInt32,
    addresses UInt32,
    unlinked_devices UInt32,
    fixtures UInt32,
    dwell_under_5 UInt32,
    dwell_5_20 UInt32,
    dwell_20_60 UInt32,
    dwell_over_60 UInt32,
    capture_rate Float32,
    estimator String,
    calibrated UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, hour_ms);
-- The share of its visitors a site's sensors hear (0: not measured), for the correction.
ALTER TABLE sites ADD COLUMN capture_rate Float32 DEFAULT 0 AFTER tz
