-- Footfall schema, version 4: each site's people-counting calibration (the RSSI floor of its
-- room and people per present device, fitted by `footfall-collector calibrate` from a
-- labelled period, imported with `import calibrations`). A site without one is estimated
-- uncalibrated. Identity: the site; the latest import wins.
CREATE TABLE IF NOT EXISTS site_calibrations (
    site_id String,
    rssi_min_dbm Int8,
    people_per_device Float64,
    windows UInt32,
    mae Float64,
    imported_ms Int64
) ENGINE = ReplacingMergeTree(imported_ms)
ORDER BY site_id;
