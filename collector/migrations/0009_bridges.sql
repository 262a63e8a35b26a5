-- Footfall schema, version 9: epoch bridges (wire crate docs, "Epoch bridges"). A device key
-- and the key the same address has in the next epoch, from the sightings of an epoch's last
-- days, so that a campaign report whose period crosses the boundary follows a device across
-- it as one unit. Identity: (epoch, next, device); one pair per device, whatever the number of
-- its sightings. Not in `sightings`: partitioned by epoch, so that the collector can drop an
-- epoch's pairs (ALTER TABLE ... DROP PARTITION) once sightings two epochs later arrive, and
-- no stored pair links keys more than one boundary apart.
CREATE TABLE IF NOT EXISTS bridges (
    epoch UInt32,
    device UInt64,
    next UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY epoch
ORDER BY (epoch, next, device)
