//! The migrations' statements for a ClickHouse cluster: every table of the single-server
//! schema becomes `<table>_local`, a `Replicated*MergeTree` on each shard's replicas (the
//! `{shard}` and `{replica}` macros of each server's configuration), under a `Distributed`
//! `<table>` of the same name and columns, sharded by the table's first sorting-key column.
//! Every version of a row has the same sorting key, so it lands on the same shard, where
//! `FINAL` and merges de-duplicate it as on one server; for every per-site table that
//! column is the site, so a site's rows, visits and counts live on one shard.
//!
//! Every statement runs `ON CLUSTER` (ClickHouse's distributed DDL, through ZooKeeper), so
//! one collector creates the schema on every server; its names carry the database, since
//! the other servers run it in their default one. Writers and readers use the
//! Distributed tables by their usual names; statements a Distributed table does not take
//! (mutations, DROP PARTITION) go to the local tables `ON CLUSTER`
//! ([`warehouse::ClickHouseConfig::local_table`]).

use warehouse::ClickHouseConfig;

/// The cluster's statements for one statement of the single-server schema, in order.
/// `tables`: the tables created so far (a materialized view reads their local twins).
pub fn rewrite(
    stmt: &str,
    c: &ClickHouseConfig,
    tables: &mut Vec<(String, String)>,
) -> Vec<String> {
    let words: Vec<&str> = stmt.split_whitespace().collect();
    match words[..] {
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", name, ..] => {
            let (local, key) = table(stmt, name, c);
            tables.push((name.to_owned(), key.clone()));
            vec![local, distributed(name, &key, c)]
        }
        ["CREATE", "MATERIALIZED", "VIEW", "IF", "NOT", "EXISTS", view, "TO", target, ..] => {
            let head = format!("CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {target}");
            let body = &stmt[stmt.find(&head).expect("the head") + head.len()..];
            // The view sees the inserts each server takes into its local table, and writes
            // the local table of its target there.
            let body = tables.iter().fold(body.to_owned(), |b, (t, _)| {
                let (from, local) = (format!("FROM {t}"), format!("FROM {}", local(c, t)));
                match b.strip_suffix(&from) {
                    Some(head) => format!("{head}{local}"),
                    None => b
                        .replace(&format!("{from}\n"), &format!("{local}\n"))
                        .replace(&format!("{from} "), &format!("{local} ")),
                }
            });
            vec![format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {}.{view} ON CLUSTER {} TO {}{body}",
                c.database(),
                cluster_of(c),
                local(c, target)
            )]
        }
        ["ALTER", "TABLE", name, ..] => {
            let op = &stmt[stmt.find(name).expect("the name") + name.len()..];
            let key = tables
                .iter()
                .find(|(t, _)| t == name)
                .map(|(_, key)| key.clone())
                .expect("an ALTER follows its table's CREATE");
            // The shards' tables; then the Distributed table made again over their new
            // columns (18.16 takes no ALTER ON CLUSTER of a table that is not replicated, on
            // a cluster of replicas). It holds no rows: inserts wait for their shard.
            vec![
                format!("ALTER TABLE {}{op}", c.local_table(name)),
                format!(
                    "DROP TABLE IF EXISTS {}.{name} ON CLUSTER {}",
                    c.database(),
                    cluster_of(c)
                ),
                distributed(name, &key, c),
            ]
        }
        // INSERT ... SELECT: through the Distributed tables, as any write.
        _ => vec![stmt.to_owned()],
    }
}

/// The cluster's name (`rewrite` is for a configuration that names one).
fn cluster_of(c: &ClickHouseConfig) -> &str {
    c.cluster()
        .expect("a cluster's statements are for a cluster")
}

/// `table`'s shard table, named with the database.
fn local(c: &ClickHouseConfig, table: &str) -> String {
    format!("{}.{}", c.database(), c.part_table(table))
}

/// The replicated local table for a `CREATE TABLE`, and its shard key.
fn table(stmt: &str, name: &str, c: &ClickHouseConfig) -> (String, String) {
    let head = format!("CREATE TABLE IF NOT EXISTS {name}");
    let rest = &stmt[stmt.find(&head).expect("the head") + head.len()..];
    let at = rest
        .find("ENGINE = ")
        .expect("every table names its engine");
    let (columns, engine) = (&rest[..at], &rest[at + "ENGINE = ".len()..]);
    // `AS other` copies the columns of another table: of its local twin.
    let columns = match columns.trim_start().strip_prefix("AS ") {
        Some(other) => format!(" AS {}\n", local(c, other.trim())),
        None => columns.to_owned(),
    };
    let name_end = engine
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(engine.len());
    let (kind, after) = engine.split_at(name_end);
    let zk = format!(
        "'/clickhouse/tables/{{shard}}/{}/{name}', '{{replica}}'",
        c.database()
    );
    let (args, tail) = match after.strip_prefix('(') {
        Some(a) => {
            let close = a.find(')').expect("the engine's arguments close");
            (format!("{zk}, {}", &a[..close]), &a[close + 1..])
        }
        None => (zk, after),
    };
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {}{columns}ENGINE = Replicated{kind}({args}){tail}",
        c.local_table(name)
    );
    (create, format!("cityHash64({})", shard_key(tail)))
}

/// The Distributed table `name` over the shards' `name_local`, sharded by `key`.
fn distributed(name: &str, key: &str, c: &ClickHouseConfig) -> String {
    let (cluster, database) = (cluster_of(c), c.database());
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER {cluster} AS {} \
         ENGINE = Distributed({cluster}, {database}, {}, {key})",
        local(c, name),
        c.part_table(name)
    )
}

/// The first column of the sorting key in a table's engine clauses.
fn shard_key(clauses: &str) -> &str {
    let key = clauses
        .split("ORDER BY")
        .nth(1)
        .expect("every table has a sorting key")
        .trim_start()
        .trim_start_matches('(');
    let end = key
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(key.len());
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::plan;

    fn all() -> Vec<String> {
        let c = ClickHouseConfig::from_raw(warehouse::RawClickHouse {
            url: "http://127.0.0.1:8123".into(),
            database: "footfall".into(),
            user: "default".into(),
            password_file: None,
            password_env: None,
            compression: "none".into(),
            ca_file: None,
            cluster: Some("fleet".into()),
            timeout_secs: None,
        })
        .expect("a cluster's configuration");
        plan(&c).migrations.concat()
    }

    #[test]
    fn every_table_is_replicated_under_a_distributed_twin_sharded_by_its_first_key() {
        let all = all();
        let sightings: Vec<&String> = all
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE IF NOT EXISTS footfall.sightings"))
            .collect();
        assert_eq!(
            sightings.len(),
            3,
            "created, and made again after an ALTER: {sightings:#?}"
        );
        assert!(sightings[0]
            .starts_with("CREATE TABLE IF NOT EXISTS footfall.sightings_local ON CLUSTER fleet ("));
        assert!(sightings[0].contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/footfall/sightings', '{replica}')\nPARTITION BY toYYYYMM(day)"
        ), "{}", sightings[0]);
        assert_eq!(
            sightings[1],
            "CREATE TABLE IF NOT EXISTS footfall.sightings ON CLUSTER fleet AS \
             footfall.sightings_local ENGINE = Distributed(fleet, footfall, sightings_local, cityHash64(site))"
        );
        let visits = all
            .iter()
            .find(|s| s.starts_with("CREATE TABLE IF NOT EXISTS footfall.visits_local"))
            .expect("visits");
        assert!(visits.contains("'{replica}', version)"), "{visits}");
        assert!(all.iter().any(|s| s.ends_with("cityHash64(board_id))")));
        let latest = all
            .iter()
            .find(|s| s.starts_with("CREATE TABLE IF NOT EXISTS footfall.sensor_latest_local"))
            .expect("sensor_latest");
        assert!(
            latest.contains(
                " AS footfall.sensor_status_local\nENGINE = ReplicatedReplacingMergeTree("
            ),
            "{latest}"
        );
        for s in &all {
            assert!(!s.contains("_local_local"), "{s}");
            if s.starts_with("CREATE") || s.starts_with("ALTER") {
                assert!(s.contains(" ON CLUSTER fleet"), "{s}");
            }
        }
    }

    #[test]
    fn a_view_reads_and_writes_the_local_tables_and_an_alter_changes_both() {
        let all = all();
        let view = all
            .iter()
            .find(|s| s.starts_with("CREATE MATERIALIZED VIEW"))
            .expect("the view");
        assert!(
            view.contains("ON CLUSTER fleet TO footfall.sensor_latest_local AS\nSELECT"),
            "{view}"
        );
        assert!(
            view.ends_with("FROM footfall.sensor_status_local"),
            "{view}"
        );
        // A view whose source is followed by more of its statement.
        let epochs = all
            .iter()
            .find(|s| {
                s.starts_with("CREATE MATERIALIZED VIEW IF NOT EXISTS footfall.visit_epochs_mv")
            })
            .expect("the epochs' view");
        assert!(
            epochs.ends_with(
                "TO footfall.visit_epochs_local AS\nSELECT epoch, day, minState(first_ms) AS \
                 first_ms FROM footfall.visits_local WHERE retracted = 0\nGROUP BY epoch, day"
            ),
            "{epochs}"
        );
        let at = all
            .iter()
            .position(|s| s.contains("ADD COLUMN link"))
            .expect("the link");
        assert_eq!(
            all[at..at + 3],
            [
                "ALTER TABLE footfall.sightings_local ON CLUSTER fleet ADD COLUMN link UInt64 DEFAULT 0 AFTER device",
                "DROP TABLE IF EXISTS footfall.sightings ON CLUSTER fleet",
                "CREATE TABLE IF NOT EXISTS footfall.sightings ON CLUSTER fleet AS \
                 footfall.sightings_local ENGINE = Distributed(fleet, footfall, sightings_local, cityHash64(site))",
            ]
        );
    }
}
