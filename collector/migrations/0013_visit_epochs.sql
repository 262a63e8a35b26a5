-- Footfall schema, version 13: the days each hashing epoch has retained visits on, kept from
-- `visits` by a materialized view, so that a campaign report finds the epochs of its period
-- (and where keys changed) in a few rows instead of reading the epoch and day of every visit
-- (a city's month: 100 M rows, a tenth of the report's time on ClickHouse; benches/README.md,
-- run 26). Every version of a visit written with retracted = 0 adds its (epoch, day); a
-- retraction adds nothing and removes nothing. A retracted visit is superseded by one of the
-- same device, and so of the same epoch, that starts no later, so an epoch's first day here
-- is its retained visits' first day; a day can be listed where an epoch's visits were all
-- purged (`footfall-collector purge`), and the report reads the visits themselves for the
-- first visit on such a day. Months go with the visits' (retention.visits_days). Rows
-- already in `visits` are copied once (again if the migration is cut short: the same rows,
-- harmless; merges keep one of each).
CREATE TABLE IF NOT EXISTS visit_epochs (
    epoch UInt32,
    day Date
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (epoch, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS visit_epochs_mv TO visit_epochs AS
SELECT epoch, day FROM visits WHERE retracted = 0 GROUP BY epoch, day;

INSERT INTO visit_epochs SELECT epoch, day FROM visits WHERE retracted = 0 GROUP BY epoch, day
