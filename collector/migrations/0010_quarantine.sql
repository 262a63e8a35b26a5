-- Footfall schema, version 10: the quarantine. A message refused for a reason the operator
-- can fix (a sensor not yet in the inventory, or at another site; a clock out of the bounds;
-- a newer contract version) is kept whole here, beside its `rejected` row, until
-- `footfall-collector requeue` asks the running collector to decode it again. Identity:
-- (topic, payload_hash), so a redelivery is the same row. `state`: 0 held, 1 requested, 2
-- replayed; the row with the highest `version` is the current one. `requested`: the version
-- of the requeue that asked for it last (0: none), which its replay keeps.
CREATE TABLE IF NOT EXISTS quarantine (
    day Date,
    topic String,
    payload_hash UInt64,
    received_ms Int64,
    reason String,
    detail String,
    payload String,
    state UInt8,
    requested UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (topic, payload_hash)
