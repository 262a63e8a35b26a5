-- Footfall schema, version 5: contract version 2's links (wire crate docs, "Links").
-- `sightings.link`: the sensor's link of the device's addresses; 0 when the sighting came
-- without one (a version 1 agent): such a sighting is a device of its own.
-- `occupancy.unlinked_devices`: of the window's devices, those that came without a link
-- (mean over the window), so an estimate that leans on old agents says so.
-- (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: the migrator skips a column that is
-- already there, which keeps a migration cut short safe to apply again.)
ALTER TABLE sightings ADD COLUMN link UInt64 DEFAULT 0 AFTER device;
ALTER TABLE occupancy ADD COLUMN unlinked_devices Float64 DEFAULT 0 AFTER randomized_devices
