-- Footfall schema, version 14: the batches (MQTT messages of sightings) each sensor sent that
-- the collector stored, a row per (sensor, seq) on the day of its sent_at (UTC), written by
-- the collector beside their sightings, so that the fleet's page can tell the batch numbers
-- a sensor used that never came (lost in its spool, refused whole, or dropped on the way:
-- a broker can drop messages it acknowledged, benches/README.md run 29) from a row a batch
-- instead of a row a sighting. (A materialized view of `sightings` made the same rows at a
-- quarter more of ClickHouse's CPU per sighting: benches/README.md, run 30.) A batch whose
-- sightings were all refused has none. ReplacingMergeTree: a batch delivered again makes the
-- same row. Months go with the sightings' (retention.sightings_days). The batches of the
-- sightings received in the last two days are copied once (again if the migration is cut
-- short: the same rows); the day is a day number (UInt16), the same in every server's time
-- zone, on 18.16 and current releases.
CREATE TABLE IF NOT EXISTS batches (
    site String,
    day Date,
    sensor String,
    seq UInt64,
    sent_ms Int64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site, day, sensor, seq);

INSERT INTO batches SELECT site, toDate(toUInt16(intDiv(sent_ms, 86400000))) AS day, sensor,
    seq, sent_ms FROM sightings WHERE received_ms >= (toUInt64(now()) - 172800) * 1000
GROUP BY site, sensor, seq, sent_ms
