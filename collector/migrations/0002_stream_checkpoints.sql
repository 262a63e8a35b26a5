-- Footfall schema, version 2: the stream stage's checkpoints.
-- Each collector process of the timely cluster records the watermark up to which every
-- visit it closed is committed. At start, process 0 reads the sightings back from the
-- least checkpoint minus the horizon to rebuild the stays. Identity: the process index;
-- the latest row wins.
CREATE TABLE IF NOT EXISTS stream_checkpoints (
    process UInt16,
    watermark_ms Int64,
    at_ms Int64
) ENGINE = ReplacingMergeTree(at_ms)
ORDER BY process;
