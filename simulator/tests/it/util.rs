use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use simulator::scenario::Scenario;

/// Generates `scenario_text` (a scenario overlay) with `seed` into a fresh temp dir.
pub fn generate(scenario_text: &str, seed: u64) -> (tempfile::TempDir, simulator::Summary) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Scenario::from_overlay(scenario_text, "test").expect("valid scenario");
    let summary = simulator::generate(&s, seed, dir.path(), 2, &mut |_| {}).expect("generate");
    (dir, summary)
}

/// A CSV file as rows of named fields.
pub struct Csv {
    pub rows: Vec<HashMap<String, String>>,
}

impl Csv {
    pub fn read(path: &Path) -> Csv {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .expect("a header")
            .split(',')
            .map(str::to_owned)
            .collect();
        let rows = lines
            .map(|l| {
                let fields: Vec<&str> = l.split(',').collect();
                assert_eq!(fields.len(), header.len(), "{}: {l}", path.display());
                header
                    .iter()
                    .cloned()
                    .zip(fields.into_iter().map(str::to_owned))
                    .collect()
            })
            .collect();
        Csv { rows }
    }
}

pub fn ms(ts: &str) -> i64 {
    ts.parse::<DateTime<Utc>>()
        .unwrap_or_else(|e| panic!("{ts}: {e}"))
        .timestamp_millis()
}

/// Every regular file under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out.sort();
    out
}
