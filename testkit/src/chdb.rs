//! ClickHouse 26.x in-process (chdb-core), to prove SQL on a current release.

use crate::assert_success;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// The Python environment with chdb-core (ClickHouse 26.x in-process) that deploy/setup.sh
/// creates: `$FOOTFALL_PYENV` or `~/.cache/footfall/py`. Panics, naming the path, if absent.
pub fn chdb_python() -> PathBuf {
    let dir = std::env::var_os("FOOTFALL_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/footfall/py")
        });
    let python = dir.join("bin/python");
    assert!(
        python.exists(),
        "no chdb Python environment at {} (run deploy/setup.sh, or set FOOTFALL_PYENV)",
        dir.display()
    );
    python
}

/// Runs the `setup` statements, then the `queries`, in a fresh chdb session (ClickHouse 26.x
/// in-process, database `footfall` current): proof that they run on a current release.
/// Returns each query's result as TSV, its rows joined by `;`. Fails the test, with the
/// engine's error and the statement, if a statement is refused, and if the engine is older than 24.
pub fn chdb_queries(setup: &[String], queries: &[String]) -> Vec<String> {
    chdb_run(None, setup, queries)
}

/// [`chdb_queries`] in an engine started with `config`: XML elements of a server
/// configuration (`<zookeeper>`, `<macros>`, `<remote_servers>`, ...).
pub fn chdb_queries_configured(config: &str, setup: &[String], queries: &[String]) -> Vec<String> {
    chdb_run(Some(config), setup, queries)
}

fn chdb_run(config: Option<&str>, setup: &[String], queries: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("statements.json");
    fs::write(
        &input,
        serde_json::to_string(&(setup, queries)).expect("json"),
    )
    .expect("write");
    let mut db = format!("file:{}", dir.path().join("db").display());
    if let Some(config) = config {
        let file = dir.path().join("config.xml");
        fs::write(&file, format!("<clickhouse>\n{config}\n</clickhouse>\n")).expect("write");
        db = format!("{db}?config-file={}", file.display());
    }
    // It leaves at once, not through Python's teardown: a session that holds replicated
    // tables waits there for minutes.
    let script = dir.path().join("run.py");
    fs::write(
        &script,
        r#"import json, os, sys, traceback
from chdb import session
try:
    s = session.Session(sys.argv[1])
    s.query('CREATE DATABASE IF NOT EXISTS footfall')
    s.query('USE footfall')
    setup, queries = json.load(open(sys.argv[2]))
    for q in setup:
        try:
            s.query(q)
        except Exception as e:
            raise RuntimeError(f'{e}\nin: {q}')
    print(s.query('SELECT version()', 'TSV').bytes().decode().strip())
    for q in queries:
        print(s.query(q, 'TSV').bytes().decode().strip().replace('\n', ';'))
except Exception:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
sys.stdout.flush()
os._exit(0)
"#,
    )
    .expect("write");
    let out = Command::new(chdb_python())
        .arg(&script)
        .arg(&db)
        .arg(&input)
        .output()
        .expect("run python");
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines().map(str::to_owned);
    let version = lines.next().expect("a version");
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("a version");
    assert!(major >= 24, "chdb runs ClickHouse {version}");
    lines.collect()
}
