//! Test support: real servers and independent tools, never mocks of them.
//!
//! - [`Mosquitto`]: a real broker process on a free loopback port in a temp dir, which can be
//!   stopped and restarted on the same port with its persistent sessions.
//! - [`Subscription`]: `mosquitto_sub` (a client we did not write) recording payloads.
//! - [`tshark_probes`]: tshark's view of a capture, the parser oracle.
//! - [`pcaps_dir`]: where the shared real captures are, failing loudly when absent.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The shared real captures: `$FOOTFALL_TESTDATA` or `../shared/testdata/pcaps` beside the
/// workspace. Panics with instructions when they are absent.
pub fn pcaps_dir() -> PathBuf {
    let dir = std::env::var_os("FOOTFALL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/pcaps")
        });
    assert!(
        dir.is_dir(),
        "TEST CAPTURES ABSENT: {} does not exist. Put the shared captures there or set \
         FOOTFALL_TESTDATA to their directory.",
        dir.display()
    );
    dir.canonicalize()
        .expect("an existing directory canonicalizes")
}

/// Every `.pcap`/`.pcapng` under `dir`, sorted.
pub fn captures_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("readable testdata directory") {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// One line per probe request in `pcap` with tshark's values of `fields` (comma-separated,
/// first occurrence of each), e.g. `["wlan.sa", "wlan.seq"]`.
pub fn tshark_probe_fields(pcap: &Path, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", "wlan.fc.type_subtype == 4", "-T", "fields"])
        .args(["-E", "occurrence=f", "-E", "separator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .expect("tshark is installed (deploy/setup.sh)");
    assert!(out.status.success(), "tshark failed on {}", pcap.display());
    String::from_utf8(out.stdout)
        .expect("tshark prints UTF-8")
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// tshark's count of probe requests and their distinct source addresses (lowercase
/// `aa:bb:cc:dd:ee:ff`).
pub fn tshark_probes(pcap: &Path) -> (u64, HashSet<String>) {
    let lines = tshark_probe_fields(pcap, &["wlan.sa"]);
    let macs = lines.iter().map(|l| l.to_lowercase()).collect();
    (lines.len() as u64, macs)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Asserts a finished command succeeded, showing its exit status, stdout and stderr if not.
pub fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `openssl` with `args` in `dir`, panicking with its output on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert_success(&o);
}

/// Writes a throwaway CA (`ca.crt`) and a server certificate for 127.0.0.1 signed by it
/// (`server.crt`, `server.key`) into `dir`.
pub fn make_test_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=footfall-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write san.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// A Mosquitto broker process on a free loopback port, with persistence in a temp dir.
pub struct Mosquitto {
    /// The plain, anonymous listener.
    pub port: u16,
    dir: TempDir,
    extra: String,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(|_| String::new())
    }

    /// Starts a broker whose configuration also has `extra(dir)` appended: further listeners
    /// (TLS, passwords) with files in the broker's temp dir. Settings are per listener.
    pub fn start_with(extra: impl FnOnce(&Path) -> String) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = extra(dir.path());
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            extra,
            child: None,
        };
        m.launch();
        m
    }

    /// The broker's temp dir (configuration, log, files written by `start_with`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Starts (or restarts) the broker on the same port and persistence directory.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let d = self.dir.path();
        let conf = d.join("mosquitto.conf");
        let mut c = format!(
            "per_listener_settings true\npersistence true\n\
             persistence_location {dir}/\nlog_dest file {dir}/mosquitto.log\nlog_type all\n\
             max_queued_messages 0\nmax_inflight_messages 0\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n",
            port = self.port,
            dir = d.display(),
            extra = self.extra,
        );
        if running_as_root() {
            c.insert_str(0, "user root\n");
        }
        fs::write(&conf, c).expect("write mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (deploy/setup.sh)");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .unwrap_or_else(|| panic!("mosquitto did not listen on {port}:\n{}", self.log()));
    }

    /// Stops the broker gracefully (it saves sessions and queued messages).
    pub fn stop(&mut self) {
        terminate(self.child.take(), Duration::from_secs(10));
    }

    /// Starts `mosquitto_sub` on `topic` with a persistent QoS 1 session `client_id`, and
    /// returns once the broker has its subscription.
    pub fn subscribe(&self, topic: &str, client_id: &str) -> Subscription {
        let out = self.dir.path().join(format!("{client_id}.out"));
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .expect("subscriber output file");
        let before = self
            .log()
            .matches(&format!("SUBSCRIBE from {client_id}"))
            .count();
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", topic, "-q", "1", "-c", "-i", client_id])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub is installed (deploy/setup.sh)");
        wait_for(Duration::from_secs(10), || {
            (self
                .log()
                .matches(&format!("SUBSCRIBE from {client_id}"))
                .count()
                > before)
                .then_some(())
        })
        .unwrap_or_else(|| panic!("mosquitto_sub did not subscribe:\n{}", self.log()));
        Subscription {
            child: Some(child),
            out,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `mosquitto_sub`, one payload per line in a file.
pub struct Subscription {
    child: Option<Child>,
    out: PathBuf,
}

impl Subscription {
    pub fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until at least `n` payloads arrived; returns them all.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        wait_for(timeout, || {
            let l = self.lines();
            (l.len() >= n).then_some(l)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {n} messages within {timeout:?}, got {}",
                self.lines().len()
            )
        })
    }

    /// Waits until no new payload has arrived for `quiet`; returns them all.
    pub fn settle(&self, quiet: Duration, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut last = self.lines().len();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.lines().len();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        self.lines()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A pcap file read into records, to be re-streamed (e.g. into a FIFO) in parts.
pub struct PcapRecords {
    pub header: Vec<u8>,
    pub records: Vec<Vec<u8>>,
}

impl PcapRecords {
    /// Reads a classic little-endian microsecond pcap file.
    pub fn read(path: &Path) -> PcapRecords {
        let data = fs::read(path).expect("readable capture");
        assert_eq!(
            &data[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "a little-endian pcap file"
        );
        let mut records = Vec::new();
        let mut at = 24;
        while at + 16 <= data.len() {
            let caplen =
                u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let end = at + 16 + caplen;
            records.push(data[at..end].to_vec());
            at = end;
        }
        PcapRecords {
            header: data[..24].to_vec(),
            records,
        }
    }

    /// Writes the header and `records` to `w`.
    pub fn write_to(&self, mut w: impl Write, records: &[Vec<u8>]) -> std::io::Result<()> {
        w.write_all(&self.header)?;
        for r in records {
            w.write_all(r)?;
        }
        w.flush()
    }
}

/// SIGTERM, then SIGKILL if `child` has not exited after `grace`.
fn terminate(child: Option<Child>, grace: Duration) {
    if let Some(mut child) = child {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if wait_for(grace, || child.try_wait().ok().flatten()).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A ClickHouse server process (Debian's 18.16) on free loopback ports, data in a temp dir.
/// Queried with `clickhouse-client`, a client we did not write.
pub struct ClickHouse {
    pub http_port: u16,
    pub tcp_port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl ClickHouse {
    pub fn start() -> ClickHouse {
        let mut c = ClickHouse {
            http_port: free_port(),
            tcp_port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        c.launch();
        c
    }

    /// The HTTP interface, for the collector's configuration.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts (or restarts) the server on the same ports and data directory.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "ClickHouse already running");
        let d = self.dir.path();
        let conf = d.join("config.xml");
        fs::write(
            &conf,
            format!(
                "<?xml version=\"1.0\"?>\n<yandex>\n\
                 <logger><level>warning</level><log>{d}/server.log</log>\
                 <errorlog>{d}/error.log</errorlog><console>0</console></logger>\n\
                 <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>\
                 <listen_host>127.0.0.1</listen_host>\n\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>\
                 <user_files_path>{d}/user_files/</user_files_path>\
                 <format_schema_path>{d}/format_schemas/</format_schema_path>\n\
                 <users_config>{d}/users.xml</users_config>\
                 <default_profile>default</default_profile>\
                 <default_database>default</default_database>\n\
                 <mark_cache_size>268435456</mark_cache_size>\
                 <max_concurrent_queries>100</max_concurrent_queries>\n</yandex>\n",
                d = d.display(),
                http = self.http_port,
                tcp = self.tcp_port,
            ),
        )
        .expect("write config.xml");
        fs::write(
            d.join("users.xml"),
            "<?xml version=\"1.0\"?>\n<yandex>\n\
             <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>\n\
             <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip>\
             </networks><profile>default</profile><quota>default</quota></default></users>\n\
             <quotas><default></default></quotas>\n</yandex>\n",
        )
        .expect("write users.xml");
        let child = Command::new("/usr/sbin/clickhouse-server")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server is installed (deploy/setup.sh)");
        self.child = Some(child);
        let ok = wait_for(Duration::from_secs(30), || {
            self.try_query("SELECT 1").ok().filter(|o| o.trim() == "1")
        });
        if ok.is_none() {
            panic!(
                "ClickHouse did not answer on {}:\n{}",
                self.tcp_port,
                fs::read_to_string(d.join("error.log")).unwrap_or_default()
            );
        }
    }

    /// Runs `sql` with clickhouse-client; Err carries its stderr.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &self.tcp_port.to_string()])
            .args(["--query", sql])
            .output()
            .expect("clickhouse-client is installed (deploy/setup.sh)");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `sql`, which must succeed, and returns its output (TabSeparated).
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("ClickHouse refused {sql}: {e}"))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 20 s).
    pub fn stop(&mut self) {
        terminate(self.child.take(), Duration::from_secs(20));
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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
/// Returns each query's result as TSV, its rows joined by `;`. Fails the test, with Python's
/// error, if a statement is refused, and if the engine is older than 24.
pub fn chdb_queries(setup: &[String], queries: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("statements.json");
    fs::write(
        &input,
        serde_json::to_string(&(setup, queries)).expect("json"),
    )
    .expect("write");
    let script = dir.path().join("run.py");
    fs::write(
        &script,
        "import json, sys\nfrom chdb import session\ns = session.Session(sys.argv[1])\n\
         s.query('CREATE DATABASE IF NOT EXISTS footfall')\ns.query('USE footfall')\n\
         setup, queries = json.load(open(sys.argv[2]))\n\
         for q in setup:\n    s.query(q)\n\
         print(s.query('SELECT version()', 'TSV').bytes().decode().strip())\n\
         for q in queries:\n    print(s.query(q, 'TSV').bytes().decode().strip().replace('\\n', ';'))\n",
    )
    .expect("write");
    let out = Command::new(chdb_python())
        .arg(&script)
        .arg(dir.path().join("db"))
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

/// A simulated city's envelopes (fast mode, `footfall-sim`): (topic, payload) of every
/// sensor, in the order the sensors sent them.
pub fn city_envelopes(city: &Path) -> Vec<(String, String)> {
    let mut messages = Vec::new();
    for line in fs::read_to_string(city.join("inventory/sensors.csv"))
        .expect("inventory/sensors.csv")
        .lines()
        .skip(1)
    {
        let f: Vec<&str> = line.split(',').collect();
        let topic = format!("footfall/v1/{}/{}/sightings", f[1], f[0]);
        for env in fs::read_to_string(city.join("envelopes").join(format!("{}.jsonl", f[0])))
            .expect("envelopes")
            .lines()
        {
            // RFC 3339 UTC with milliseconds: sorts as text.
            let at = env
                .split("\"sent_at\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("sent_at")
                .to_owned();
            messages.push((at, topic.clone(), env.to_owned()));
        }
    }
    messages.sort();
    messages.into_iter().map(|(_, t, e)| (t, e)).collect()
}

/// Publishes `messages` with mosquitto_pub (QoS 1) to the broker on `port`, in `chunks`
/// pieces in order, `pause` apart; within a piece, one mosquitto_pub per topic with its
/// lines on stdin (files in `dir`).
pub fn mosquitto_pub_lines(
    port: u16,
    dir: &Path,
    messages: &[(String, String)],
    chunks: usize,
    pause: Duration,
) {
    let tag = DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for (k, chunk) in messages
        .chunks(messages.len().div_ceil(chunks).max(1))
        .enumerate()
    {
        let mut topics: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        for (i, topic) in topics.into_iter().enumerate() {
            let lines: Vec<&str> = chunk
                .iter()
                .filter(|(t, _)| t == topic)
                .map(|(_, e)| e.as_str())
                .collect();
            let file = dir.join(format!("publish-{tag}-{k}-{i}.jsonl"));
            fs::write(&file, lines.join("\n") + "\n").expect("write");
            let out = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-q", "1", "-t", topic, "-l"])
                .stdin(fs::File::open(&file).expect("chunk"))
                .output()
                .expect("mosquitto_pub is installed (deploy/setup.sh)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(pause);
    }
}

static DIRS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
