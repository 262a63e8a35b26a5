-- Footfall schema, version 12: what a checkpoint settles besides the visits. Every sighting
-- received (its received_ms) before settled_ms has been merged into the stream stage's
-- state, or was too late for it and its visits have been recomputed. At start, process 0
-- recomputes the visits around the sightings received since the least settled_ms that are
-- behind the checkpoint's horizon: late data whose recompute a stop cut short. Rows written
-- before this version settle nothing.
ALTER TABLE stream_checkpoints ADD COLUMN settled_ms Int64 DEFAULT 9223372036854775807
