-- Footfall schema, version 13: the days each hashing epoch has retained visits on, with the
-- start of its first visit that day, kept from `visits` by a materialized view, so that a
-- campaign report finds the epochs of its period, and where keys changed, in a few rows
-- instead of reading the epoch, day and start of every visit (a city's month: 100 M rows,
-- a seventh of ClickHouse's CPU in a report; benches/README.md, run 26). Every version of a
-- visit written with retracted = 0 adds its epoch, day and start; a retraction adds nothing
-- and removes nothing. A retracted visit is superseded by one of the same device, and so of
-- the same epoch, that starts no later, so an epoch's first day here, and its first start
-- that day, are its retained visits'; after a purge (`footfall-collector purge`) they can be
-- those of a visit purged. Months go with the visits' (retention.visits_days). Rows already
-- in `visits` are copied once (again if the migration is cut short: the same minimum).
CREATE TABLE IF NOT EXISTS visit_epochs (
    epoch UInt32,
    day Date,
    first_ms AggregateFunction(min, Int64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (epoch, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS visit_epochs_mv TO visit_epochs AS
SELECT epoch, day, minState(first_ms) AS first_ms FROM visits WHERE retracted = 0
GROUP BY epoch, day;

INSERT INTO visit_epochs SELECT epoch, day, minState(first_ms) AS first_ms FROM visits
WHERE retracted = 0 GROUP BY epoch, day
