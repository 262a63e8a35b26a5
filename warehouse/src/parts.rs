//! Compacted partitions. The tables are `ReplacingMergeTree`s: rows with one key may sit in
//! several parts until ClickHouse merges them, so a reader that wants one row per key reads
//! with `FINAL`, which 18.16 runs as one merging stream (a month of a city's visits: 15 s
//! against 1.5 s for the plain scan, benches/README.md). A partition that is one part made by
//! a merge (level above 0) on each node has no two rows with one key: it is read plainly.
//! The collector compacts the months no more data reaches (`OPTIMIZE ... FINAL`); the readers
//! ask which partitions are compacted ([`Compacted::read`]) and read the others with `FINAL`.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::Deserialize;

use crate::ClickHouseConfig;

/// The tables the campaign report reads whole months of, which the collector compacts once
/// no more data reaches a month. Each is partitioned by `toYYYYMM(day)`, or not at all.
pub const REPORTED: &[&str] = &["visits", "ad_plays", "receipts", "links"];

/// One partition of a table on one node, as `system.parts` lists its active parts.
#[derive(Clone, Debug, PartialEq, Row, Deserialize)]
pub struct Partition {
    pub table: String,
    /// `system.parts.partition`: `202603` for `toYYYYMM(day)`, `tuple()` unpartitioned.
    pub partition: String,
    pub host: String,
    /// The names of its active parts, sorted: a merge or an insert changes them.
    pub parts: Vec<String>,
    /// The least merge level of its parts (0: a part as inserted).
    pub min_level: u32,
}

impl Partition {
    /// One part made by a merge: one row per key.
    fn compacted(&self) -> bool {
        self.parts.len() == 1 && self.min_level > 0
    }
}

/// The active partitions of `tables` on every node the tables live on.
async fn partitions(
    db: &clickhouse::Client,
    ch: &ClickHouseConfig,
    tables: &[&str],
) -> Result<Vec<Partition>, clickhouse::error::Error> {
    let names: Vec<String> = tables.iter().map(|t| ch.part_table(t)).collect();
    let mut rows: Vec<Partition> = db
        .query(&format!(
            // hostName() is evaluated on each node of a cluster() read.
            "SELECT table, partition, hostName() AS host, arraySort(groupArray(name)) AS parts, \
             min(level) AS min_level FROM {} WHERE database = ? AND active AND has(?, table) \
             GROUP BY table, partition, host",
            ch.system_table("parts")
        ))
        .bind(ch.database())
        .bind(&names)
        .fetch_all()
        .await?;
    // Named as the readers name them, not as the parts' tables on a cluster are.
    for r in &mut rows {
        if let Some(i) = names.iter().position(|n| *n == r.table) {
            r.table = tables[i].to_owned();
        }
    }
    Ok(rows)
}

/// The last day (days since 1970) of `table`'s rows on every node, from its active parts'
/// `max_date` (the minmax index of the `day` it is partitioned by): no read of the table's
/// rows. 0 (1970-01-01) when it has none.
pub async fn last_day(
    db: &clickhouse::Client,
    ch: &ClickHouseConfig,
    table: &str,
) -> Result<u16, clickhouse::error::Error> {
    db.query(&last_day_query(ch))
        .bind(ch.database())
        .bind(ch.part_table(table))
        .fetch_one()
        .await
}

/// [`last_day`]'s statement, the database and the parts' table bound to its `?`s.
pub fn last_day_query(ch: &ClickHouseConfig) -> String {
    format!(
        "SELECT max(max_date) FROM {} WHERE database = ? AND active AND table = ?",
        ch.system_table("parts")
    )
}

/// Which partitions of the [`REPORTED`] tables a reader can read without `FINAL`: those
/// compacted on every node that holds them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compacted {
    /// Per table and partition.
    tables: BTreeMap<String, BTreeMap<String, Layout>>,
}

/// A partition's parts on each node.
#[derive(Clone, Debug, PartialEq)]
struct Layout {
    /// (node, its parts' names), sorted.
    nodes: Vec<(String, Vec<String>)>,
    /// One merged part on every node.
    compacted: bool,
}

impl Compacted {
    /// Nothing read plainly: every read with `FINAL`.
    pub fn none() -> Compacted {
        Compacted::default()
    }

    /// The partitions of `tables` now.
    pub async fn read(
        db: &clickhouse::Client,
        ch: &ClickHouseConfig,
        tables: &[&str],
    ) -> Result<Compacted, clickhouse::error::Error> {
        Ok(Compacted::of(partitions(db, ch, tables).await?))
    }

    /// From `system.parts`' rows ([`partitions`]).
    pub fn of(rows: Vec<Partition>) -> Compacted {
        let mut c = Compacted::default();
        for r in rows {
            let entry = c
                .tables
                .entry(r.table.clone())
                .or_default()
                .entry(r.partition.clone())
                .or_insert(Layout {
                    nodes: Vec::new(),
                    compacted: true,
                });
            entry.compacted &= r.compacted();
            entry.nodes.push((r.host, r.parts));
            entry.nodes.sort();
        }
        c
    }

    /// The partition ids of `table` that are read plainly, and whether any is not.
    fn split(&self, table: &str) -> (Vec<&str>, bool) {
        let Some(partitions) = self.tables.get(table) else {
            return (Vec::new(), true);
        };
        let plain: Vec<&str> = partitions
            .iter()
            .filter(|(_, l)| l.compacted)
            .map(|(p, _)| p.as_str())
            .collect();
        let any_final = plain.len() < partitions.len();
        (plain, any_final)
    }

    /// `(SELECT {cols} FROM {table} WHERE {cond})` with one row per key: the compacted
    /// partitions read plainly, the others with `FINAL` (each partition read once).
    pub fn rows(&self, table: &str, cols: &str, cond: &str) -> String {
        self.rows_pre(table, cols, None, cond)
    }

    /// [`Compacted::rows`], with the rows first filtered by `pre` (`PREWHERE`): the rest of
    /// the condition is evaluated on the rows it keeps only. `pre` reads key columns alone,
    /// since a read with `FINAL` filters by it before it collapses the versions of a key.
    pub fn rows_pre(&self, table: &str, cols: &str, pre: Option<&str>, cond: &str) -> String {
        let pre = pre.map_or(String::new(), |p| format!(" PREWHERE {p}"));
        let select = |fin: &str, extra: &str| {
            format!("SELECT {cols} FROM {table}{fin}{pre} WHERE ({cond}){extra}")
        };
        match self.split(table) {
            (plain, true) if plain.is_empty() => format!("({})", select(" FINAL", "")),
            (_, false) => format!("({})", select("", "")),
            (plain, true) => {
                // Only a month partition can be split: `tuple()` is the whole table.
                let months = plain.join(", ");
                format!(
                    "({} UNION ALL {})",
                    select("", &format!(" AND toYYYYMM(day) IN ({months})")),
                    select(" FINAL", &format!(" AND toYYYYMM(day) NOT IN ({months})"))
                )
            }
        }
    }

    /// The partitions of `table` that are not one merged part on every node (`202603`,
    /// `tuple()`): what the collector compacts once they are settled.
    pub fn not_compacted(&self, table: &str) -> Vec<&str> {
        self.tables.get(table).map_or_else(Vec::new, |partitions| {
            partitions
                .iter()
                .filter(|(_, l)| !l.compacted)
                .map(|(p, _)| p.as_str())
                .collect()
        })
    }

    /// The partitions read plainly, `table partition` each.
    pub fn plain(&self) -> Vec<String> {
        self.tables
            .keys()
            .flat_map(|t| self.split(t).0.into_iter().map(move |p| format!("{t} {p}")))
            .collect()
    }

    /// Whether every partition read plainly here is still the same parts in `later`: else
    /// a part came (or a merge ran) while it was read, and what was read may hold two rows
    /// of a key.
    pub fn unchanged_in(&self, later: &Compacted) -> bool {
        self.tables.iter().all(|(table, partitions)| {
            partitions
                .iter()
                .filter(|(_, l)| l.compacted)
                .all(|(p, now)| {
                    later
                        .tables
                        .get(table)
                        .and_then(|l| l.get(p))
                        .is_some_and(|then| then == now)
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The partition `table` holds on `host` as the parts `names` (`<partition>_<min block>_
    /// <max block>_<level>`; `all_...` unpartitioned).
    fn part(table: &str, host: &str, names: &[&str]) -> Partition {
        let field = |n: &str, i: usize| n.split('_').nth(i).expect("a part name").to_owned();
        let partition = match field(names[0], 0).as_str() {
            "all" => "tuple()".to_owned(),
            month => month.to_owned(),
        };
        Partition {
            table: table.into(),
            partition,
            host: host.into(),
            parts: names.iter().map(|p| (*p).to_owned()).collect(),
            min_level: names
                .iter()
                .map(|n| field(n, 3).parse().expect("a level"))
                .min()
                .expect("a part"),
        }
    }

    #[test]
    fn a_partition_is_read_plainly_only_as_one_merged_part_on_every_node() {
        let c = Compacted::of(vec![
            // One merged part: plain.
            part("visits", "a", &["202602_1_9_2"]),
            // Two parts, or one as inserted: FINAL.
            part("visits", "a", &["202603_1_5_1", "202603_6_6_0"]),
            part("visits", "a", &["202604_1_1_0"]),
            // Merged on one shard, two parts on the other: FINAL.
            part("visits", "a", &["202605_1_4_1"]),
            part("visits", "b", &["202605_1_1_0", "202605_2_2_0"]),
            part("links", "a", &["all_1_3_1"]),
            part("receipts", "a", &["202603_1_1_0"]),
        ]);
        assert_eq!(
            c.rows("visits", "device", "site = 's'"),
            "(SELECT device FROM visits WHERE (site = 's') AND toYYYYMM(day) IN (202602) \
             UNION ALL SELECT device FROM visits FINAL WHERE (site = 's') \
             AND toYYYYMM(day) NOT IN (202602))"
        );
        assert_eq!(
            c.rows_pre("visits", "device", Some("device = 7"), "site = 's'"),
            "(SELECT device FROM visits PREWHERE device = 7 WHERE (site = 's') \
             AND toYYYYMM(day) IN (202602) \
             UNION ALL SELECT device FROM visits FINAL PREWHERE device = 7 WHERE (site = 's') \
             AND toYYYYMM(day) NOT IN (202602))",
            "the rows first filtered by it, in both reads"
        );
        assert_eq!(
            c.rows("links", "device", "1"),
            "(SELECT device FROM links WHERE (1))"
        );
        assert_eq!(
            c.rows("receipts", "at_ms", "1"),
            "(SELECT at_ms FROM receipts FINAL WHERE (1))"
        );
        // A table with no parts listed (or not asked about) is read with FINAL.
        assert_eq!(
            c.rows("ad_plays", "start_ms", "1"),
            "(SELECT start_ms FROM ad_plays FINAL WHERE (1))"
        );
        assert_eq!(
            Compacted::none().rows("links", "device", "1"),
            "(SELECT device FROM links FINAL WHERE (1))"
        );
        assert_eq!(c.plain(), ["links tuple()", "visits 202602"]);
        assert_eq!(c.not_compacted("visits"), ["202603", "202604", "202605"]);
        assert_eq!(c.not_compacted("receipts"), ["202603"]);
        assert!(c.not_compacted("links").is_empty());
        assert!(Compacted::none().plain().is_empty());
    }

    #[test]
    fn a_part_that_came_to_a_partition_read_plainly_is_a_change() {
        let before = Compacted::of(vec![
            part("visits", "a", &["202602_1_9_2"]),
            part("visits", "a", &["202603_1_5_1", "202603_6_6_0"]),
        ]);
        // Parts of a partition read with FINAL may change.
        let merged = Compacted::of(vec![
            part("visits", "a", &["202602_1_9_2"]),
            part("visits", "a", &["202603_1_6_2"]),
        ]);
        assert!(before.unchanged_in(&merged));
        let inserted = Compacted::of(vec![
            part("visits", "a", &["202602_1_9_2", "202602_10_10_0"]),
            part("visits", "a", &["202603_1_6_2"]),
        ]);
        assert!(!before.unchanged_in(&inserted));
        let remerged = Compacted::of(vec![part("visits", "a", &["202602_1_10_3"])]);
        assert!(!before.unchanged_in(&remerged));
    }
}
