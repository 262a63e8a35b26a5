use simulator::scenario::Scenario;
use testkit::ClickHouse;

use crate::util::{assert_success, collector, config};

/// (kind, file in a simulated city, table, rows in the file).
fn files(city: &std::path::Path) -> Vec<(&'static str, std::path::PathBuf, &'static str, usize)> {
    let lines = |rel: &str, header: usize| {
        std::fs::read_to_string(city.join(rel))
            .expect("file")
            .lines()
            .count()
            - header
    };
    vec![
        (
            "sites",
            city.join("inventory/sites.csv"),
            "sites",
            lines("inventory/sites.csv", 1),
        ),
        (
            "sensors",
            city.join("inventory/sensors.csv"),
            "sensors",
            lines("inventory/sensors.csv", 1),
        ),
        (
            "ad-plays",
            city.join("ad_plays.csv"),
            "ad_plays",
            lines("ad_plays.csv", 1),
        ),
        (
            "campaigns",
            city.join("campaigns.jsonl"),
            "campaigns",
            lines("campaigns.jsonl", 0),
        ),
        (
            "receipts",
            city.join("receipts.csv"),
            "receipts",
            lines("receipts.csv", 1),
        ),
        (
            "links",
            city.join("links.csv"),
            "links",
            lines("links.csv", 1),
        ),
    ]
}

#[test]
fn a_simulated_citys_files_import_whole_and_a_second_import_changes_nothing() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let city = dir.path().join("city");
    let s = Scenario::preset("tiny").expect("tiny");
    simulator::generate(&s, 2, &city, 2, &mut |_| {}).expect("generate");
    let cfg = config(dir.path(), &ch, "imports");
    let snapshot = |table: &str| {
        ch.query(&format!(
            "SELECT count(), sum(cityHash64(*)) FROM (SELECT * FROM imports.{table} FINAL)"
        ))
    };
    let mut before = Vec::new();
    for (kind, file, table, rows) in files(&city) {
        let o = collector(&["import", kind, file.to_str().expect("utf-8")], &cfg);
        assert_success(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!("imported {rows} rows into {table}")),
            "{out}"
        );
        assert!(rows > 0, "{kind}: the city wrote rows");
        let snap = snapshot(table);
        assert_eq!(
            snap.split('\t').next(),
            Some(rows.to_string().as_str()),
            "{table}: {snap}"
        );
        before.push(snap);
    }
    // Every receipt amount survives to the cent.
    let total: f64 = std::fs::read_to_string(city.join("receipts.csv"))
        .expect("receipts")
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(3)
                .expect("amount")
                .parse::<f64>()
                .expect("a number")
        })
        .sum();
    let cents: i64 = ch
        .query("SELECT sum(amount_cents) FROM imports.receipts FINAL")
        .trim()
        .parse()
        .expect("a sum");
    assert_eq!(cents, (total * 100.0).round() as i64);

    for (i, (kind, file, table, _)) in files(&city).into_iter().enumerate() {
        assert_success(&collector(
            &["import", kind, file.to_str().expect("utf-8")],
            &cfg,
        ));
        if ["sites", "sensors", "campaigns", "links"].contains(&table) {
            // The version column is the import time: compare what the rows say.
            let q = |t: &str| ch.query(&format!("SELECT count() FROM imports.{t} FINAL"));
            assert_eq!(
                q(table).trim(),
                before[i].split('\t').next().expect("count"),
                "{table}"
            );
        } else {
            assert_eq!(
                snapshot(table),
                before[i],
                "{table} changed on a second import"
            );
        }
    }
}

#[test]
fn a_file_of_several_chunks_imports_whole_and_counts_every_bad_row() {
    // The importer reads and inserts 100 000 rows at a time (a city's month of plays does
    // not fit in memory): every chunk, the last partial one included, lands, and every bad
    // row is counted though only the first ones' reasons are kept.
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &ch, "chunks");
    let file = dir.path().join("receipts.csv");
    let (good, bad) = (250_001, 1_200);
    let mut text = String::from("receipt_id,store_id,at,amount,currency,loyalty_id\n");
    for i in 0..good + bad {
        let at = if i % 209 == 208 && i / 209 < bad {
            "never"
        } else {
            "2026-03-02T10:00:00.000Z"
        };
        text.push_str(&format!("r-{i},acme-001,{at},1.00,EUR,\n"));
    }
    std::fs::write(&file, text).expect("write");
    let o = collector(&["import", "receipts", file.to_str().expect("utf-8")], &cfg);
    assert_eq!(o.status.code(), Some(65));
    let out = String::from_utf8_lossy(&o.stdout);
    let f = file.display();
    for want in [
        format!("imported {good} rows into receipts; {bad} bad rows:"),
        format!("{f}:210: column at: \"never\""),
        format!("... and {} more", bad - 50),
    ] {
        assert!(
            out.contains(&want),
            "{want:?} not in:\n{}",
            &out[..out.len().min(2000)]
        );
    }
    assert_eq!(
        ch.query("SELECT count(), sum(amount_cents) FROM chunks.receipts FINAL"),
        format!("{good}\t{}\n", good * 100)
    );
}

#[test]
fn bad_rows_are_reported_with_file_and_line_and_the_good_ones_imported() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &ch, "bad_rows");
    let file = dir.path().join("receipts.csv");
    std::fs::write(
        &file,
        "receipt_id,store_id,at,amount,currency,loyalty_id\n\
         r-1,acme-001,2026-03-02T10:00:00.000Z,12.50,EUR,\n\
         r-2,acme-001,yesterday,3.00,EUR,\n\
         r-3,acme-001,2026-03-02T11:00:00.000Z,-4.00,EUR,\n\
         r-4,acme-001,2026-03-02T12:00:00.000Z,7.25,EUR,acme-L1\n\
         r-5,acme-001,2026-03-02T12:00:00.000Z,7.25\n\
         r-6,acme 001,2026-03-02T12:00:00.000Z,1.00,EUR,\n",
    )
    .expect("write");
    let o = collector(&["import", "receipts", file.to_str().expect("utf-8")], &cfg);
    assert_eq!(
        o.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let f = file.display();
    for want in [
        "imported 2 rows into receipts; 4 bad rows:".to_string(),
        format!("{f}:3: column at: \"yesterday\" is not an RFC 3339 time"),
        format!("{f}:4: column amount: \"-4.00\" is negative"),
        format!("{f}:6: 4 fields, the header has 6"),
        format!("{f}:7: column store_id:"),
    ] {
        assert!(out.contains(&want), "{want:?} not in:\n{out}");
    }
    assert_eq!(
        ch.query(
            "SELECT receipt_id, amount_cents FROM bad_rows.receipts FINAL ORDER BY receipt_id"
        ),
        "r-1\t1250\nr-4\t725\n"
    );

    // A file without the expected header is refused whole, naming the column.
    std::fs::write(&file, "id,store\nx,y\n").expect("write");
    let o = collector(&["import", "receipts", file.to_str().expect("utf-8")], &cfg);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(":1: the header has no column receipt_id"));

    // Quoted fields (RFC 4180) are read whole, commas, quotes and line breaks included, and
    // a bad row after a multi-line field is reported at its own line.
    std::fs::write(
        &file,
        "receipt_id,store_id,at,amount,currency,loyalty_id\n\
         r-7,acme-001,2026-03-02T13:00:00.000Z,2.00,EUR,\"L, \"\"7\"\"\nx\"\n\
         r-8,acme-001,never,2.00,EUR,\n",
    )
    .expect("write");
    let o = collector(&["import", "receipts", file.to_str().expect("utf-8")], &cfg);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("{f}:4: column at: \"never\"")),
        "{out}"
    );
    assert_eq!(
        ch.query("SELECT loyalty_id FROM bad_rows.receipts FINAL WHERE receipt_id = 'r-7'"),
        "L, \"7\"\\nx\n",
        "clickhouse-client escapes the line break in TSV"
    );

    // Sites: the time zone column is optional (UTC without it) and must be an IANA name;
    // the capture rate is optional too (0: not measured) and must be a share.
    let sites = dir.path().join("sites.csv");
    std::fs::write(
        &sites,
        "site_id,kind,brand,lat,lon,tz,capture_rate,open_hour,close_hour,rssi_threshold_dbm,min_dwell_secs\n\
         ny-1,store,acme,40.71,-74.0,America/New_York,0.42,9,21,-70,180\n\
         mars-1,store,acme,40.71,-74.0,Mars/Olympus_Mons,,9,21,-70,180\n\
         utc-1,store,acme,40.71,-74.0,,,9,21,-70,180\n\
         over-1,store,acme,40.71,-74.0,,1.5,9,21,-70,180\n",
    )
    .expect("write");
    let o = collector(&["import", "sites", sites.to_str().expect("utf-8")], &cfg);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!(
            "{}:3: column tz: \"Mars/Olympus_Mons\" is not an IANA time zone name",
            sites.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}:5: column capture_rate: \"1.5\" is not a share in (0, 1]",
            sites.display()
        )),
        "{out}"
    );
    assert_eq!(
        ch.query("SELECT site_id, tz, capture_rate FROM bad_rows.sites FINAL ORDER BY site_id"),
        "ny-1\tAmerica/New_York\t0.42\nutc-1\tUTC\t0\n"
    );
}
