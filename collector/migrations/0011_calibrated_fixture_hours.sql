-- Footfall schema, version 11: a site's calibration fits how long a device stays in a day
-- before it is a fixture (counted apart), beside its RSSI floor and scale. Calibrations
-- imported before it were fitted with the 4-hour rule.
ALTER TABLE site_calibrations ADD COLUMN fixture_hours UInt8 DEFAULT 4 AFTER people_per_device
