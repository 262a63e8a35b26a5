//! Test support: real servers and independent tools, never mocks of them. One module per
//! process or tool; everything is re-exported here.
//!
//! - [`Mosquitto`]: a real broker process on a free loopback port in a temp dir, which can be
//!   stopped and restarted on the same port with its persistent sessions; [`Subscription`]:
//!   `mosquitto_sub` (a client we did not write) recording payloads; [`mosquitto_pub_lines`].
//! - [`ClickHouse`]: Debian's 18.16 as a server process; [`chdb_queries`]: 26.x in-process;
//!   [`ClickHouseCluster`]: shards of replicas on a [`ZooKeeper`].
//! - [`tshark_probes`]: tshark's view of a capture, the parser oracle.
//! - [`pcaps_dir`]: where the shared real captures are, failing loudly when absent;
//!   [`FryzaDay`]: a labelled lab day (frames with the people in the room).
//! - [`make_test_pki`]: a throwaway CA and server certificate.
//! - [`module_cycles`]: the modules of a crate that import one another.
//! - [`metrics_text`] and [`metric`]: a process's Prometheus metrics, as a scraper reads them.
//! - [`xorshift`]: seeded made-up data for tests that draw many cases.

mod chdb;
mod clickhouse;
mod cluster;
mod fryza;
mod layers;
mod metrics;
mod mosquitto;
mod pcap;
mod pki;
mod process;
mod tshark;

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::chdb::*;
pub use crate::clickhouse::*;
pub use crate::cluster::*;
pub use crate::fryza::*;
pub use crate::layers::*;
pub use crate::metrics::*;
pub use crate::mosquitto::*;
pub use crate::pcap::*;
pub use crate::pki::*;
pub use crate::process::{signal, KillOnDrop};
pub use crate::tshark::*;

/// A binary of another package of the workspace, beside the running test's own (`cargo test
/// --workspace` builds every package's binaries before it runs any test).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test runs from target/<profile>/deps")
        .join(name);
    assert!(
        bin.exists(),
        "{} is not built: run the workspace's tests (cargo test --workspace)",
        bin.display()
    );
    bin
}

/// A seeded generator of made-up test data (xorshift64): each call gives a number in
/// `[0, n)`. The same seed gives the same data on every machine, so a failure can be run
/// again.
pub fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// A free TCP port on 127.0.0.1 for a server a test starts, never the same twice in one
/// process, and below the kernel's ephemeral range: an outgoing connection (any client's local
/// port) cannot take it between its choice here and the server's bind, nor while a test has
/// the server stopped to restart it on the same port. (A port the kernel chose, as binding
/// port 0 does, is in that range: a cluster test lost one of its servers' ports that way.)
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let (low, high) = (10_000u16, ephemeral_start().max(11_000));
    let span = u64::from(high - low);
    // Processes that run tests side by side start their walks at random places.
    let start = RandomState::new().hash_one(std::process::id()) % span;
    (0..span)
        .map(|i| low + ((start + i) % span) as u16)
        .find(|&port| !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok())
        .inspect(|&port| {
            given.insert(port);
        })
        .expect("a free loopback port below the ephemeral range")
}

/// The first port the kernel hands to outgoing connections and binds of port 0.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_ports_are_distinct_and_out_of_reach_of_outgoing_connections() {
        let ports: Vec<u16> = (0..300).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        let ephemeral = ephemeral_start();
        assert!(
            ports.iter().all(|&p| p < ephemeral),
            "a port in the ephemeral range (from {ephemeral}): {ports:?}"
        );
    }
}
