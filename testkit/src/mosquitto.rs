//! Mosquitto: a real broker process, `mosquitto_sub` recording what it delivers, and
//! `mosquitto_pub` publishing a simulated city's envelopes.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{running_as_root, terminate, Workdir};
use crate::{free_port, wait_for};

/// A Mosquitto broker process on a free loopback port, with persistence in a temp dir.
pub struct Mosquitto {
    /// The plain, anonymous listener.
    pub port: u16,
    dir: Workdir,
    extra: String,
    /// For load (benches, the calibration): no persistence, and only errors, warnings and
    /// notices logged (a notice says when the broker drops a client's messages).
    quiet: bool,
    /// `per_listener_settings true` ([`Mosquitto::start_with_listeners`]).
    per_listener: bool,
    /// A whole configuration instead of the standard one ([`Mosquitto::start_config`]).
    config: Option<String>,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(|_| String::new())
    }

    /// Starts a broker whose configuration also has `extra(dir)` appended (settings for the
    /// whole broker; files in its temp dir).
    pub fn start_with(extra: impl FnOnce(&Path) -> String) -> Mosquitto {
        Mosquitto::launched(Workdir::temp(), extra, false, false)
    }

    /// As [`Mosquitto::start_with`], with `per_listener_settings true`: `extra` adds listeners
    /// with their own authentication (TLS, passwords) beside the plain, anonymous one. Not for
    /// a client that leaves and comes back: Mosquitto 2.0.21 keeps no message for a persistent
    /// session whose client is away under this setting (2.0.11 did).
    pub fn start_with_listeners(extra: impl FnOnce(&Path) -> String) -> Mosquitto {
        Mosquitto::launched(Workdir::temp(), extra, false, true)
    }

    /// A broker for load: as [`Mosquitto::start`], without persistence and logging only
    /// errors, warnings and notices (a log of every packet would cost as much as the broker).
    pub fn start_quiet() -> Mosquitto {
        Mosquitto::launched(Workdir::temp(), |_| String::new(), true, false)
    }

    /// A broker with its configuration, persistence and log in `dir`, kept: for load
    /// (`quiet`, as [`Mosquitto::start_quiet`]) or logging every packet (as
    /// [`Mosquitto::start`]); `extra` is appended to the configuration (settings given there
    /// again win: Mosquitto keeps the last value of a setting).
    pub fn start_in(dir: &Path, quiet: bool, extra: String) -> Mosquitto {
        Mosquitto::launched(Workdir::kept(dir), |_| extra, quiet, false)
    }

    /// The shipped broker's (`deploy/mosquitto/footfall.conf`) limits on what it holds per
    /// session and accepts: messages in flight and queued, and the largest message. The
    /// standard configuration here has none.
    pub fn shipped_limits() -> String {
        shipped_broker_settings(&[
            "max_queued_messages ",
            "max_inflight_messages ",
            "max_inflight_bytes ",
            "message_size_limit ",
        ])
    }

    /// A broker run from a whole configuration `config(dir, port)`: a shipped file with its
    /// paths and listener rewritten to the temp dir and the free port (which may be a TLS
    /// listener). Only the log (every packet) and, as root, `user root` are added.
    pub fn start_config(config: impl FnOnce(&Path, u16) -> String) -> Mosquitto {
        let dir = Workdir::temp();
        let port = free_port();
        let config = config(dir.path(), port);
        let mut m = Mosquitto {
            port,
            dir,
            extra: String::new(),
            quiet: false,
            per_listener: false,
            config: Some(config),
            child: None,
        };
        m.launch();
        m
    }

    fn launched(
        dir: Workdir,
        extra: impl FnOnce(&Path) -> String,
        quiet: bool,
        per_listener: bool,
    ) -> Mosquitto {
        let extra = extra(dir.path());
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            extra,
            quiet,
            per_listener,
            config: None,
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

    /// The broker's process id (for its CPU time in the benches).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Starts (or restarts) the broker on the same port and persistence directory.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let d = self.dir.path();
        let conf = d.join("mosquitto.conf");
        let (persistence, logged) = if self.quiet {
            ("false", "log_type error\nlog_type warning\nlog_type notice")
        } else {
            ("true", "log_type all")
        };
        let mut c = match &self.config {
            Some(config) => format!(
                "{config}\npersistence_location {dir}/\nlog_dest file {dir}/mosquitto.log\n\
                 log_type all\n",
                dir = d.display()
            ),
            None => format!(
                "per_listener_settings {per_listener}\npersistence {persistence}\n\
                 persistence_location {dir}/\nlog_dest file {dir}/mosquitto.log\n{logged}\n\
                 max_queued_messages 0\nmax_inflight_messages 0\n\
                 listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n",
                port = self.port,
                dir = d.display(),
                extra = self.extra,
                per_listener = self.per_listener,
            ),
        };
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

    /// Kills the broker with SIGKILL: what it has not saved yet (persistence is saved every
    /// `autosave_interval`) is lost, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

/// Every sensor of a simulated city (fast mode, `footfall-sim`): its sightings topic and
/// the file of its envelopes.
fn city_sensors(city: &Path) -> Vec<(String, PathBuf)> {
    fs::read_to_string(city.join("inventory/sensors.csv"))
        .expect("inventory/sensors.csv")
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (
                format!("footfall/v1/{}/{}/sightings", f[1], f[0]),
                city.join("envelopes").join(format!("{}.jsonl", f[0])),
            )
        })
        .collect()
}

/// A simulated city's envelopes (fast mode, `footfall-sim`): (topic, payload) of every
/// sensor, in the order the sensors sent them.
pub fn city_envelopes(city: &Path) -> Vec<(String, String)> {
    let mut messages = Vec::new();
    for (topic, envelopes) in city_sensors(city) {
        for env in fs::read_to_string(envelopes).expect("envelopes").lines() {
            // RFC 3339 UTC with milliseconds: sorts as text.
            messages.push((sent_at(env).to_owned(), topic.clone(), env.to_owned()));
        }
    }
    messages.sort();
    messages.into_iter().map(|(_, t, e)| (t, e)).collect()
}

/// An envelope's `sent_at` (JSON), as it is written: RFC 3339 UTC.
pub fn sent_at(envelope: &str) -> &str {
    envelope
        .split("\"sent_at\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("sent_at")
}

/// Publishes a simulated city's envelopes (fast mode) to the broker on `port`: one
/// mosquitto_pub per sensor, all at once, each sending its sensor's envelopes in order (as
/// the sensors would), QoS 1. Returns once every one has had its envelopes acknowledged.
pub fn publish_city(city: &Path, port: u16) {
    let publishers: Vec<Child> = city_sensors(city)
        .into_iter()
        .map(|(topic, envelopes)| {
            Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-l"])
                .args(["-t", &topic])
                .stdin(fs::File::open(&envelopes).expect("the sensor's envelopes"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("mosquitto_pub is installed (deploy/setup.sh)")
        })
        .collect();
    for p in publishers {
        let out = p.wait_with_output().expect("mosquitto_pub runs");
        assert!(
            out.status.success(),
            "mosquitto_pub: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

/// The lines of the shipped broker configuration (`deploy/mosquitto/footfall.conf`) that set
/// `keys` (each with its trailing space), as configuration text; panics unless each is set
/// exactly once.
pub fn shipped_broker_settings(keys: &[&str]) -> String {
    let file = crate::deploy("mosquitto/footfall.conf");
    let text = fs::read_to_string(&file).expect("the shipped broker configuration");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| keys.iter().any(|k| l.starts_with(k)))
        .collect();
    assert_eq!(lines.len(), keys.len(), "{}: {lines:?}", file.display());
    lines.join("\n") + "\n"
}
