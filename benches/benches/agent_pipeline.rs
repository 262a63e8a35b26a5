//! The agent's per-frame path, single thread: libpcap read, parse, keyed hash, sessionize
//! and batch (batches discarded), over the Fryza lab capture repeated to >= 1 M frames,
//! beside `tcpdump -r FILE -w /dev/null` (libpcap's raw read rate) on the same file in the
//! same run; and the same path from memory, without libpcap.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use firmware_config::{Config, Keys, Secret};
use sensor_agent::pipeline::{Batch, BatchSink, Pipeline, PipelineSettings};

const REPEAT: u64 = 48; // 48 x 21257 = 1 020 336 frames

struct Discard(usize);

impl BatchSink for Discard {
    fn put(&mut self, batch: Batch) -> Result<(), sensor_agent::Error> {
        self.0 += batch.sightings.len();
        Ok(())
    }
}

fn repeated_capture(dir: &Path) -> std::path::PathBuf {
    let src = testkit::pcaps_dir().join("fryza/position_1_2022-11-15.pcap");
    let out = dir.join("fryza-1M.pcap");
    let status = Command::new(env!("CARGO_BIN_EXE_repeat-pcap"))
        .arg(&src)
        .arg(&out)
        .arg(REPEAT.to_string())
        .status()
        .expect("repeat-pcap runs");
    assert!(status.success());
    out
}

fn pipeline() -> Pipeline {
    let cfg = Config::from_toml_str(
        "[identity]\nsecret_env = \"UNUSED\"\n\
         [capture]\nrssi_floor_dbm = -128\nfcs_policy = \"trust-flag\"",
        Path::new("/"),
    )
    .expect("valid config");
    Pipeline::new(
        PipelineSettings::from_config(&cfg, HashSet::new()),
        Keys::Tenant(Secret::from_bytes(
            b"benchmark-tenant-secret-0123456789".to_vec(),
        )),
        false,
    )
}

fn replay_file(path: &Path) -> usize {
    let mut cap = pcap::Capture::from_file(path).expect("capture opens");
    let mut p = pipeline();
    let mut sink = Discard(0);
    while let Ok(pkt) = cap.next_packet() {
        let ts = pkt.header.ts.tv_sec * 1000 + pkt.header.ts.tv_usec / 1000;
        p.on_frame(ts, pkt.data, false, &mut sink)
            .expect("discarding sink");
    }
    p.finish(&mut sink).expect("discarding sink");
    sink.0
}

fn bench(c: &mut Criterion) {
    let dir = tempfile_dir();
    let file = repeated_capture(&dir);
    let frames = 21_257 * REPEAT;

    let mut g = c.benchmark_group("agent_replay_1M_frames");
    g.throughput(Throughput::Elements(frames));
    g.sample_size(10);
    g.bench_function("tcpdump_r_to_dev_null", |b| {
        b.iter(|| {
            let ok = Command::new("tcpdump")
                .arg("-r")
                .arg(&file)
                .args(["-w", "/dev/null"])
                .stderr(Stdio::null())
                .status()
                .expect("tcpdump is installed (deploy/setup.sh)");
            assert!(ok.success());
        })
    });
    g.bench_function("libpcap_parse_hash_sessionize", |b| {
        b.iter(|| assert!(replay_file(&file) > 200_000))
    });

    let mut cap = pcap::Capture::from_file(&file).expect("capture opens");
    let mut in_memory = Vec::new();
    while let Ok(pkt) = cap.next_packet() {
        let ts = pkt.header.ts.tv_sec * 1000 + pkt.header.ts.tv_usec / 1000;
        in_memory.push((ts, pkt.data.to_vec()));
    }
    g.bench_function("in_memory_parse_hash_sessionize", |b| {
        b.iter(|| {
            let mut p = pipeline();
            let mut sink = Discard(0);
            for (ts, data) in &in_memory {
                p.on_frame(*ts, data, false, &mut sink)
                    .expect("discarding sink");
            }
            p.finish(&mut sink).expect("discarding sink");
            assert!(sink.0 > 200_000);
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("footfall-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

criterion_group!(benches, bench);
criterion_main!(benches);
